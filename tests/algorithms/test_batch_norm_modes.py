"""BatchNorm during adaptation: transductive batch statistics vs running statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot


def _bn_backbone():
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, name="dense"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(),
            keras.layers.Dense(3, name="head"),
        ]
    )


def _episodes(query_scale=1.0):
    rng = np.random.default_rng(0)
    sx = rng.normal(size=(2, 6, 4)).astype("float32")
    qx = rng.normal(size=(2, 6, 4)).astype("float32")
    qx[:, 1:] *= query_scale  # change every query but the first
    return {
        "support_x": sx,
        "support_y": np.tile(np.arange(3).repeat(2), (2, 1)).astype("int32"),
        "query_x": qx,
        "query_y": np.tile(np.arange(3).repeat(2), (2, 1)).astype("int32"),
    }


def _learner(mode):
    learner = fewshot.MAML(_bn_backbone(), inner_lr=0.1, batch_norm=mode)
    learner.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return learner


@pytest.mark.parametrize("mode", ["transductive", "running"])
def test_query_prediction_depends_on_other_queries_only_when_transductive(mode):
    learner = _learner(mode)
    first = learner.query_predictions(_episodes(1.0))[:, 0].numpy()
    changed = learner.query_predictions(_episodes(5.0))[:, 0].numpy()
    if mode == "transductive":
        assert np.abs(first - changed).max() > 1e-3
    else:
        np.testing.assert_allclose(first, changed, atol=1e-6)


def test_running_mode_updates_moving_statistics_and_transductive_does_not():
    for mode, should_move in (("transductive", False), ("running", True)):
        learner = _learner(mode)
        bn = learner.backbone.get_layer("bn")
        before = bn.moving_mean.numpy().copy()
        dataset = tf.data.Dataset.from_tensors(_episodes()).repeat(3)
        learner.fit(dataset, epochs=1, verbose=0)
        moved = not np.allclose(before, bn.moving_mean.numpy())
        assert moved == should_move, mode


def test_batch_norm_error_and_config():
    with pytest.raises(ValueError, match="Expected one of \\['transductive', 'running'\\]. Received: batch_norm='none'"):
        fewshot.MAML(_bn_backbone(), batch_norm="none")
    assert fewshot.MAML(_bn_backbone(), batch_norm="running").get_config()["batch_norm"] == "running"
