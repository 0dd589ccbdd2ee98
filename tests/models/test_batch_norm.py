"""fewshot.models.BatchNormalization: Keras' layer, with exact second derivatives."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot
from tests.gradient_checks import meta_gradient, meta_loss_differences, relative_error


def _x(shape=(3, 4, 4, 2), seed=0):
    return np.random.default_rng(seed).normal(size=shape) * 2.0 + 1.0


@pytest.mark.parametrize("training", [True, False])
def test_forward_and_moving_statistics_equal_keras(training):
    x = _x().astype("float32")
    ours, theirs = fewshot.models.BatchNormalization(momentum=0.5), keras.layers.BatchNormalization(momentum=0.5)
    for layer in (ours, theirs):
        layer.build(x.shape)
        layer.gamma.assign([1.5, -0.5])
        layer.beta.assign([0.2, 0.1])
    np.testing.assert_allclose(ours(x, training=training), theirs(x, training=training), atol=1e-5)
    np.testing.assert_allclose(ours.moving_mean, theirs.moving_mean, atol=1e-6)
    np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, atol=1e-5)


def test_channels_first_axis():
    x = _x((3, 2, 4, 4)).astype("float32")
    ours, theirs = fewshot.models.BatchNormalization(axis=1), keras.layers.BatchNormalization(axis=1)
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-5)


def test_second_derivative_matches_finite_differences():
    """d/dx <d loss/dx, r> by autodiff equals central differences of the first derivative."""
    layer = fewshot.models.BatchNormalization(dtype="float64")
    x0 = _x()
    layer.build(x0.shape)
    layer.gamma.assign([1.3, -0.7])
    r = tf.constant(np.random.default_rng(1).normal(size=x0.shape))

    def directional(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(layer(x, training=True)) * r)
        return tf.reduce_sum(tape.gradient(loss, x) * r)

    x = tf.constant(x0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = directional(x)
    analytic = tape.gradient(value, x).numpy()
    numeric, eps = np.zeros_like(x0), 1e-6
    for index in np.ndindex(x0.shape):
        step = np.zeros_like(x0)
        step[index] = eps
        numeric[index] = float(directional(tf.constant(x0 + step)) - directional(tf.constant(x0 - step))) / (2 * eps)
    assert np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric) < 1e-6


def test_second_order_maml_through_batch_norm_matches_finite_differences():
    """The DESIGN.md proof of second order, on a conv + batch-norm backbone."""
    backbone = keras.Sequential([
        keras.Input((4, 4, 1)),
        keras.layers.Conv2D(2, 3, padding="same", dtype="float64"),
        fewshot.models.BatchNormalization(dtype="float64"),
        keras.layers.Activation("tanh", dtype="float64"),
        keras.layers.Flatten(dtype="float64"),
        keras.layers.Dense(1, dtype="float64"),
    ])
    learner = fewshot.MAML(backbone, inner_lr=0.3, inner_steps=2)
    learner.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    episodes = {
        "support_x": tf.constant(rng.normal(size=(2, 3, 4, 4, 1))),
        "support_y": tf.constant(rng.normal(size=(2, 3, 1))),
        "query_x": tf.constant(rng.normal(size=(2, 3, 4, 4, 1))),
        "query_y": tf.constant(rng.normal(size=(2, 3, 1))),
    }
    assert relative_error(meta_gradient(learner, episodes), meta_loss_differences(learner, episodes)) < 1e-5


def test_config_round_trip_and_save_load(tmp_path):
    model = fewshot.models.conv4(outputs=2, filters=4)
    assert isinstance(model.get_layer("bn_1"), fewshot.models.BatchNormalization)
    path = tmp_path / "conv4.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.get_layer("bn_1")) is fewshot.models.BatchNormalization
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(loaded(x, training=True), model(x, training=True), atol=1e-5)


def test_second_order_maml_warns_about_keras_batch_norm():
    def backbone(layer):
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), layer, keras.layers.Dense(1)])

    with pytest.warns(UserWarning, match=r"keras.layers.BatchNormalization \(bn\).*fewshot.models.BatchNormalization"):
        fewshot.MAML(backbone(keras.layers.BatchNormalization(name="bn")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fewshot.MAML(backbone(fewshot.models.BatchNormalization(name="bn")))
        fewshot.MAML(backbone(keras.layers.BatchNormalization(name="bn")), first_order=True)
        fewshot.MAML(backbone(keras.layers.BatchNormalization(name="bn")), batch_norm="running")


def test_the_warning_covers_subclasses_that_keep_keras_statistics():
    """A user's subclass of Keras' layer inherits its batch moments, so it is warned about too."""

    class Renamed(keras.layers.BatchNormalization):
        pass

    backbone = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), Renamed(name="mine"), keras.layers.Dense(1)]
    )
    with pytest.warns(UserWarning, match=r"\(mine\)"):
        fewshot.MAML(backbone)
    synced = keras.Sequential(
        [keras.Input((4,)), fewshot.models.BatchNormalization(synchronized=True, name="sync"), keras.layers.Dense(1)]
    )
    with pytest.warns(UserWarning, match=r"\(sync\)"):
        fewshot.MAML(synced)


def _plain_batch_norm(x, gamma, beta, axes, epsilon):
    """Batch normalisation by automatic differentiation of its forward pass."""
    mean = tf.reduce_mean(x, axes, keepdims=True)
    variance = tf.reduce_mean(tf.square(x - mean), axes, keepdims=True)
    shape = [1 if a in axes else -1 for a in range(len(x.shape))]
    return (x - mean) * tf.math.rsqrt(variance + epsilon) * tf.reshape(gamma, shape) + tf.reshape(beta, shape)


@pytest.mark.parametrize("axes", [(0, 1, 2), (0, 2, 3)])
def test_closed_form_gradient_equals_autodiff_to_second_order(axes):
    """First and second derivatives in x, gamma and beta equal autodiff of the formula."""
    from fewshot.models.batch_norm import batch_norm_train

    rng = np.random.default_rng(2)
    x = tf.constant(_x((3, 4, 4, 2), seed=3))
    channels = [x.shape[a] for a in range(4) if a not in axes]
    gamma = tf.constant(rng.normal(size=channels))
    beta = tf.constant(rng.normal(size=channels))
    weights = tf.constant(rng.normal(size=x.shape))

    def derivatives(normalise):
        inputs = [x, gamma, beta]
        with tf.GradientTape() as outer:
            outer.watch(inputs)
            with tf.GradientTape() as inner:
                inner.watch(inputs)
                loss = tf.reduce_sum(tf.sin(normalise(x, gamma, beta)) * weights)
            first = inner.gradient(loss, inputs)
            # A scalar that mixes all first derivatives, as MAML's query loss does.
            mixed = sum(tf.reduce_sum(tf.cos(g) * tf.ones_like(g)) for g in first)
        return first + outer.gradient(mixed, inputs)

    ours = derivatives(lambda *a: batch_norm_train(*a, axes, 1e-3)[0])
    plain = derivatives(lambda *a: _plain_batch_norm(*a, axes, 1e-3))
    for got, want in zip(ours, plain):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10)


def test_without_scale_and_offset_equals_keras():
    x = _x().astype("float32")
    ours = fewshot.models.BatchNormalization(scale=False, center=False)
    theirs = keras.layers.BatchNormalization(scale=False, center=False)
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-5)
    np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, atol=1e-6)
