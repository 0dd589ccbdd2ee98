"""The meta-gradient is the true (second-order) gradient of the MAML objective."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot


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


def _meta_gradient(learner, episodes):
    with tf.GradientTape() as tape:
        loss, _ = learner.meta_loss(episodes, training=True)
    return [g.numpy() for g in tape.gradient(loss, learner.trainable_variables)]


def _finite_differences(learner, episodes, eps=1e-5):
    # Compiled once; it reads the variables' current values at every call.
    meta_loss = tf.function(lambda: learner.meta_loss(episodes, training=True)[0], autograph=False)
    grads = []
    for variable in learner.trainable_variables:
        base = variable.numpy()
        grad = np.zeros_like(base)
        for index in np.ndindex(base.shape):
            values = []
            for sign in (1.0, -1.0):
                shifted = base.copy()
                shifted[index] += sign * eps
                variable.assign(shifted)
                values.append(float(meta_loss()))
            grad[index] = (values[0] - values[1]) / (2 * eps)
        variable.assign(base)
        grads.append(grad)
    return grads


def _relative_error(a, b):
    a = np.concatenate([x.ravel() for x in a])
    b = np.concatenate([x.ravel() for x in b])
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("vectorize", [True, False])
def test_second_order_meta_gradient_matches_finite_differences(steps, vectorize):
    learner = _tiny_learner(first_order=False)
    learner.inner_steps = steps
    learner.vectorize = vectorize
    episodes = _episodes()
    analytic = _meta_gradient(learner, episodes)
    numeric = _finite_differences(learner, episodes)
    assert _relative_error(analytic, numeric) < 1e-4


def test_first_order_gradient_differs_from_second_order():
    learner = _tiny_learner(first_order=False)
    learner.inner_steps = 3
    episodes = _episodes()
    second = _meta_gradient(learner, episodes)
    numeric = _finite_differences(learner, episodes)
    learner.first_order = True
    first = _meta_gradient(learner, episodes)
    # The first-order gradient is an approximation: measurably off the true one...
    assert _relative_error(first, numeric) > 1e-2
    # ...while the second-order one is exact.
    assert _relative_error(second, numeric) < 1e-4


def test_first_order_equals_query_gradient_at_adapted_weights():
    """FOMAML's gradient is the query-loss gradient taken at the adapted weights."""
    learner = _tiny_learner(first_order=True)
    episodes = _episodes(tasks=1)
    fomaml = _meta_gradient(learner, episodes)
    task = {k: v[0] for k, v in episodes.items()}
    adapted = learner.adapt(task["support_x"], task["support_y"], steps=1)
    with tf.GradientTape() as tape:
        pred = adapted(task["query_x"])
        loss = tf.reduce_mean(keras.losses.mean_squared_error(task["query_y"], pred))
    expected = tape.gradient(loss, adapted.trainable_variables)
    assert _relative_error(fomaml, [g.numpy() for g in expected]) < 1e-10


def test_zero_inner_steps_is_plain_gradient():
    learner = _tiny_learner(first_order=False)
    learner.inner_steps = 0
    episodes = _episodes()
    analytic = _meta_gradient(learner, episodes)
    with tf.GradientTape() as tape:
        qx = tf.reshape(episodes["query_x"], (-1, 2))
        qy = tf.reshape(episodes["query_y"], (-1, 1))
        loss = tf.reduce_mean(keras.losses.mean_squared_error(qy, learner.backbone(qx)))
    plain = tape.gradient(loss, learner.trainable_variables)
    assert _relative_error(analytic, [g.numpy() for g in plain]) < 1e-10
