"""ANIL's inner loop computes the body's features once and steps through the head."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot
from fewshot.algorithms import inner_loop, maml


def _conv_episodes():
    rng = np.random.default_rng(2)
    labels = np.tile(np.arange(3), (4, 2))
    return {
        "support_x": tf.constant(rng.normal(size=(4, 6, 12, 12, 1)), tf.float32),
        "support_y": tf.constant(labels),
        "query_x": tf.constant(rng.normal(size=(4, 6, 12, 12, 1)), tf.float32),
        "query_y": tf.constant(labels),
    }


def _conv_anil(**kwargs):
    keras.utils.set_random_seed(0)
    backbone = fewshot.models.conv4(input_shape=(12, 12, 1), outputs=3, filters=4, blocks=2)
    learner = fewshot.ANIL(backbone, inner_lr=0.4, inner_steps=3, **kwargs)
    learner.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return learner


def _meta_gradient(learner, episodes):
    @tf.function(autograph=False)
    def grad(episodes):
        with tf.GradientTape() as tape:
            loss, _ = learner.meta_loss(episodes, training=True)
        return loss, tape.gradient(loss, learner.trainable_variables)

    loss, grads = grad(episodes)
    return float(loss), [g.numpy() for g in grads]


@pytest.mark.parametrize("first_order,vectorize", [(False, True), (True, False)],
                         ids=["second_order_vectorized", "first_order_task_loop"])
def test_head_only_steps_give_the_whole_backbone_gradient(monkeypatch, first_order, vectorize):
    """Features computed once give the meta-gradient of running the whole Conv4 at every step."""
    episodes = _conv_episodes()
    split = _meta_gradient(_conv_anil(first_order=first_order, vectorize=vectorize), episodes)
    monkeypatch.setattr(maml, "split_at_adapted", lambda model, mask: None)
    whole = _meta_gradient(_conv_anil(first_order=first_order, vectorize=vectorize), episodes)
    np.testing.assert_allclose(split[0], whole[0], rtol=1e-5)
    learner = _conv_anil()
    paths = [v.path for v in learner.trainable_variables]
    body = [i for i, path in enumerate(paths) if "head" not in path and "kernel" in path]
    assert len(body) == 2  # both conv kernels: the outer gradient reaches the body
    for i in body:
        assert np.abs(split[1][i]).max() > 1e-4
    for path, a, b in zip(paths, split[1], whole[1]):
        scale = np.abs(b).max()
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * max(scale, 1.0), err_msg=path)


def test_the_body_runs_once_per_task_and_the_head_once_per_step(monkeypatch):
    learner = _conv_anil()
    calls = []
    run = inner_loop.LayerRun.__call__

    def counted(self, *args):
        calls.append(len(self.layers))
        return run(self, *args)

    monkeypatch.setattr(inner_loop.LayerRun, "__call__", counted)
    episodes = _conv_episodes()
    learner.adapt_parameters(
        learner.meta_parameters(), episodes["support_x"][0], episodes["support_y"][0], 3, False
    )
    body, head = inner_loop.split_at_adapted(learner.backbone, learner._adapt_mask)
    assert calls == [len(body.layers)] + [len(head.layers)] * 3
    assert [layer.name for layer in head.layers] == ["head"]


def test_split_at_adapted_needs_a_sequential_with_a_fixed_first_layer():
    backbone = fewshot.models.mlp(hidden=(8, 8))
    count = len(backbone.trainable_variables)
    assert inner_loop.split_at_adapted(backbone, [True] * count) is None
    assert inner_loop.split_at_adapted(backbone, [True, True] + [False] * (count - 2)) is None
    body, head = inner_loop.split_at_adapted(backbone, [False] * (count - 2) + [True, True])
    assert len(body.layers) + len(head.layers) == len(backbone.layers)
    inputs = keras.Input((1,))
    functional = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(4)(inputs)))
    assert inner_loop.split_at_adapted(functional, [False, False, True, True]) is None
    # The split runs give the backbone's own output.
    x = tf.constant(np.linspace(-5, 5, 7, dtype="float32")[:, None])
    params = [tf.convert_to_tensor(v) for v in backbone.trainable_variables]
    np.testing.assert_allclose(head(params, [], body(params, [], x, False), False),
                               backbone(x), rtol=1e-6)
