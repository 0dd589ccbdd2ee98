"""The meta-gradient is the true (second-order) gradient of the MAML objective."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot
from tests.gradient_checks import meta_gradient, meta_loss_differences, relative_error


def _tiny_learner(first_order):
    backbone = fewshot.models.mlp(
        input_shape=(2,), hidden=(3,), outputs=1, activation="tanh", dtype="float64"
    )
    learner = fewshot.MAML(backbone, inner_lr=0.3, inner_steps=1, first_order=first_order)
    learner.compile(optimizer="sgd", loss="mse")
    return learner


def _episodes(seed=0, tasks=2):
    rng = np.random.default_rng(seed)
    shape = (tasks, 4, 2)
    sx, qx = rng.normal(size=shape), rng.normal(size=shape)
    w = rng.normal(size=(tasks, 2, 1))
    return {
        "support_x": tf.constant(sx),
        "support_y": tf.constant(np.tanh(sx @ w) * 2.0),
        "query_x": tf.constant(qx),
        "query_y": tf.constant(np.tanh(qx @ w) * 2.0),
    }


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("vectorize", [True, False])
def test_second_order_meta_gradient_matchesmeta_loss_differences(steps, vectorize):
    learner = _tiny_learner(first_order=False)
    learner.inner_steps = steps
    learner.vectorize = vectorize
    episodes = _episodes()
    analytic = meta_gradient(learner, episodes)
    numeric = meta_loss_differences(learner, episodes)
    assert relative_error(analytic, numeric) < 1e-4


def test_first_order_gradient_differs_from_second_order():
    learner = _tiny_learner(first_order=False)
    learner.inner_steps = 3
    episodes = _episodes()
    second = meta_gradient(learner, episodes)
    numeric = meta_loss_differences(learner, episodes)
    learner.first_order = True
    first = meta_gradient(learner, episodes)
    # The first-order gradient is an approximation: measurably off the true one...
    assert relative_error(first, numeric) > 1e-2
    # ...while the second-order one is exact.
    assert relative_error(second, numeric) < 1e-4


def test_first_order_equals_query_gradient_at_adapted_weights():
    """FOMAML's gradient is the query-loss gradient taken at the adapted weights."""
    learner = _tiny_learner(first_order=True)
    episodes = _episodes(tasks=1)
    fomaml = meta_gradient(learner, episodes)
    task = {k: v[0] for k, v in episodes.items()}
    adapted = learner.adapt(task["support_x"], task["support_y"], steps=1)
    with tf.GradientTape() as tape:
        pred = adapted(task["query_x"])
        loss = tf.reduce_mean(keras.losses.mean_squared_error(task["query_y"], pred))
    expected = tape.gradient(loss, adapted.trainable_variables)
    assert relative_error(fomaml, [g.numpy() for g in expected]) < 1e-10


def test_zero_inner_steps_is_plain_gradient():
    learner = _tiny_learner(first_order=False)
    learner.inner_steps = 0
    episodes = _episodes()
    analytic = meta_gradient(learner, episodes)
    with tf.GradientTape() as tape:
        qx = tf.reshape(episodes["query_x"], (-1, 2))
        qy = tf.reshape(episodes["query_y"], (-1, 1))
        loss = tf.reduce_mean(keras.losses.mean_squared_error(qy, learner.backbone(qx)))
    plain = tape.gradient(loss, learner.trainable_variables)
    assert relative_error(analytic, [g.numpy() for g in plain]) < 1e-10
