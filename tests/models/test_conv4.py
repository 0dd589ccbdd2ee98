"""Conv4: shapes, config round trip, and MAML's functional inner loop with BatchNorm."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot


def test_shapes_and_layer_names():
    encoder = fewshot.models.conv4()
    assert encoder.output_shape == (None, 64)
    assert len(encoder.trainable_variables) == 4 * 4  # conv kernel+bias, bn gamma+beta
    model = fewshot.models.conv4(input_shape=(28, 28, 1), outputs=5, filters=8)
    assert model.output_shape == (None, 5)
    assert model.layers[-1].name == "head"
    assert [l.name for l in model.layers[:4]] == ["conv_1", "bn_1", "relu_1", "pool_1"]


def test_config_round_trip_gives_same_outputs():
    model = fewshot.models.conv4(outputs=3, filters=8)
    clone = keras.Sequential.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(0).random((2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(clone(x), model(x), atol=1e-6)


def test_bad_argument_message():
    with pytest.raises(ValueError, match="Expected a positive integer. Received: filters=0"):
        fewshot.models.conv4(filters=0)


def test_maml_on_conv4_vectorized_matches_loop():
    """stateless_call + vectorized_map with BatchNorm give the per-task loop's result.

    A convolution's bias feeds a training-mode BatchNorm, which subtracts the
    batch mean, so its exact gradient is zero and both paths return only
    float32 round-off for it (~1e-6 against kernel gradients of ~1): those are
    checked to be zero on the kernel's scale, every other gradient to match.
    """
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    batch = {
        "support_x": rng.random((2, 6, 28, 28, 1)).astype("float32"),
        "support_y": np.tile(np.arange(3).repeat(2), (2, 1)).astype("int32"),
        "query_x": rng.random((2, 6, 28, 28, 1)).astype("float32"),
        "query_y": np.tile(np.arange(3).repeat(2), (2, 1)).astype("int32"),
    }
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    backbone = fewshot.models.conv4(outputs=3, filters=8)
    results = {}
    for vectorize in (True, False):
        learner = fewshot.MAML(backbone, inner_lr=0.4, inner_steps=1, first_order=False, vectorize=vectorize)
        learner.compile(optimizer="adam", loss=loss)
        with tf.GradientTape() as tape:
            value, _ = learner.meta_loss(batch, training=True)
        grads = tape.gradient(value, learner.trainable_variables)
        results[vectorize] = (float(value), [g.numpy() for g in grads])
    assert results[True][0] == pytest.approx(results[False][0], rel=1e-4)
    paths = [v.path for v in learner.trainable_variables]
    layer_and_name = [path.split("/")[-2:] for path in paths]
    kernel_scale = {
        layer: np.abs(grad).max()
        for (layer, name), grad in zip(layer_and_name, results[False][1])
        if layer.startswith("conv") and name == "kernel"
    }
    assert len(kernel_scale) == 4 and min(kernel_scale.values()) > 1e-2
    for path, (layer, name), a, b in zip(paths, layer_and_name, results[True][1], results[False][1]):
        if layer in kernel_scale and name == "bias":
            assert np.abs(a).max() < 1e-4 * kernel_scale[layer], path
            assert np.abs(b).max() < 1e-4 * kernel_scale[layer], path
        else:
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5, err_msg=path)


def test_numpy_arguments_are_accepted():
    model = fewshot.models.conv4(input_shape=np.array([28, 28, 1]), outputs=np.int64(5), filters=np.int64(4))
    assert model.output_shape == (None, 5)
    assert model.input_shape == (None, 28, 28, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_norm_momentum": 5.0}, r"Expected a float in \[0, 1\). Received: batch_norm_momentum=5.0"),
        ({"batch_norm_momentum": 1}, r"Received: batch_norm_momentum=1"),
        ({"input_shape": 28}, r"Expected \(height, width, channels\). Received: input_shape=28"),
        ({"outputs": 2.0}, r"Received: outputs=2.0"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fewshot.models.conv4(**kwargs)


def test_torch_initializer_and_epsilon_are_used_and_saved(tmp_path):
    from fewshot.models.conv4 import TORCH_CONV_INITIALIZER

    keras.utils.set_random_seed(0)
    model = fewshot.models.conv4(
        filters=64, kernel_initializer=TORCH_CONV_INITIALIZER, batch_norm_epsilon=1e-5, batch_norm_momentum=0.9
    )
    kernel = model.get_layer("conv_2").kernel.numpy()  # 3 x 3 x 64 inputs: fan_in 576
    bound = 1.0 / np.sqrt(3 * 3 * 64)
    assert np.abs(kernel).max() <= bound
    assert np.abs(kernel).max() > 0.95 * bound  # uniform over the whole range, not a narrower one
    assert model.get_layer("bn_3").epsilon == 1e-5
    default = fewshot.models.conv4(filters=64)
    assert np.abs(default.get_layer("conv_2").kernel.numpy()).max() > 1.5 * bound  # Glorot: sqrt(6/1152)
    assert default.get_layer("bn_3").epsilon == 1e-3
    path = tmp_path / "torch_init.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer("bn_1").epsilon == 1e-5
    assert loaded.get_layer("conv_1").get_config()["kernel_initializer"]["config"]["scale"] == 1.0 / 3.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_norm_epsilon": 0.0}, r"Expected a positive float. Received: batch_norm_epsilon=0.0"),
        ({"batch_norm_epsilon": "1e-5"}, r"Received: batch_norm_epsilon='1e-5'"),
        ({"kernel_initializer": "no_such_init"}, r"Received: kernel_initializer='no_such_init'"),
    ],
)
def test_bad_initializer_and_epsilon_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fewshot.models.conv4(**kwargs)
