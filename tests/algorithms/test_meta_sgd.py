"""Meta-SGD's learned inner learning rates get the true meta-gradient."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot
from tests.gradient_checks import finite_differences, relative_error


def _learner(steps):
    backbone = fewshot.models.mlp(
        input_shape=(2,), hidden=(3,), outputs=1, activation="tanh", dtype="float64"
    )
    learner = fewshot.MetaSGD(backbone, inner_lr=0.3, inner_steps=steps)
    learner.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(1)
    for rate in learner.inner_learning_rates():  # distinct rates per weight
        rate.assign(0.3 + 0.1 * rng.normal(size=rate.shape))
    return learner


def _episodes():
    rng = np.random.default_rng(0)
    sx, qx = rng.normal(size=(2, 4, 2)), rng.normal(size=(2, 4, 2))
    w = rng.normal(size=(2, 2, 1))
    return {
        "support_x": tf.constant(sx),
        "support_y": tf.constant(np.tanh(sx @ w) * 2.0),
        "query_x": tf.constant(qx),
        "query_y": tf.constant(np.tanh(qx @ w) * 2.0),
    }


def test_learned_rates_gradient_matches_finite_differences():
    learner = _learner(steps=2)
    episodes = _episodes()
    rates = learner.inner_learning_rates()
    meta_loss = tf.function(lambda: learner.meta_loss(episodes, training=True)[0])
    with tf.GradientTape() as tape:
        loss = meta_loss()
    analytic = [g.numpy() for g in tape.gradient(loss, rates)]
    numeric = finite_differences(meta_loss, rates, eps=1e-6)
    assert np.linalg.norm(np.concatenate([g.ravel() for g in numeric])) > 1e-3
    assert relative_error(analytic, numeric) < 1e-5


def test_rates_are_trainable_weights_initialised_to_inner_lr():
    backbone = fewshot.models.mlp(input_shape=(1,), hidden=(4,), outputs=1)
    learner = fewshot.MetaSGD(backbone, inner_lr=0.05)
    rates = learner.inner_learning_rates()
    assert len(rates) == len(backbone.trainable_variables)
    for rate, variable in zip(rates, backbone.trainable_variables):
        assert tuple(rate.shape) == tuple(variable.shape)
        np.testing.assert_allclose(rate.numpy(), 0.05)
    assert all(any(rate is v for v in learner.trainable_variables) for rate in rates)


def test_meta_training_moves_the_rates():
    backbone = fewshot.models.mlp(input_shape=(1,), hidden=(8,), outputs=1)
    learner = fewshot.MetaSGD(backbone, inner_lr=0.01)
    learner.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    learner.fit(fewshot.episodes.Sinusoid().stream(meta_batch_size=4, batches_per_epoch=5), epochs=1, verbose=0)
    assert not np.allclose(learner.inner_learning_rates()[0].numpy(), 0.01)


def test_freezing_a_layer_after_construction_is_refused_not_misaligned():
    # The rates are matched to the backbone's trainable variables by position.
    backbone = fewshot.models.mlp(input_shape=(1,), hidden=(4,), outputs=1)
    learner = fewshot.MetaSGD(backbone, inner_lr=0.1)
    learner.compile(loss="mse")
    x = np.linspace(-1, 1, 5, dtype="float32")[:, None]
    learner.adapt(x, x)
    backbone.get_layer("hidden_1").trainable = False
    with pytest.raises(ValueError, match=r"MetaSGD holds a learned inner rate for each trainable variable "
                                         r"the backbone had at construction .*a layer was frozen or unfrozen"):
        learner.adapt(x, x)
    backbone.get_layer("hidden_1").trainable = True
    assert len(learner.adapt(x, x).adaptation_loss) == 2
