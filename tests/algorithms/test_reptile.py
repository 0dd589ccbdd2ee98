"""Reptile's update, with the whole support set or in inner mini-batches."""

import keras
import numpy as np
import pytest

import fewshot


def _learner(inner_batch_size=None, steps=1, vectorize=False):
    keras.utils.set_random_seed(3)
    backbone = fewshot.models.mlp(input_shape=(2,), hidden=(4,), outputs=1)
    reptile = fewshot.Reptile(
        backbone, inner_lr=0.1, inner_steps=steps, inner_batch_size=inner_batch_size, vectorize=vectorize
    )
    reptile.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="mse")
    return reptile


def _episode(sx, sy):
    sx, sy = np.asarray(sx, "float32"), np.asarray(sy, "float32")
    return {"support_x": sx[None], "support_y": sy[None], "query_x": sx[None, :1], "query_y": sy[None, :1]}


def _after_one_update(reptile, episode):
    reptile.train_on_batch(episode)
    return [v.numpy() for v in reptile.backbone.trainable_variables]


SX = [[0.5, -1.0], [1.5, 2.0], [-2.0, 0.3]]
SY = [[1.0], [-2.0], [0.5]]


def test_a_batch_of_the_whole_support_is_the_full_batch_update():
    # With the SGD(1.0) outer step the new weights are the adapted ones, phi.
    # Batches as large as the support set hold all of it in some order: the
    # same mean loss, so the same two steps as without mini-batches.
    full = _after_one_update(_learner(None, steps=2), _episode(SX, SY))
    batched = _after_one_update(_learner(3, steps=2), _episode(SX, SY))
    for a, b in zip(full, batched):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("vectorize", [False, True])
def test_each_inner_step_takes_the_next_examples_of_a_shuffle(vectorize):
    # One step on a batch of one is one SGD step on one support example;
    # which one is drawn by the shuffle, so the update is one of three.
    candidates = [_after_one_update(_learner(None), _episode(SX[i:i + 1], SY[i:i + 1])) for i in range(3)]
    seen = set()
    reptile = _learner(1, vectorize=vectorize)
    start = [v.numpy() for v in reptile.backbone.trainable_variables]
    for _ in range(12):
        for v, value in zip(reptile.backbone.trainable_variables, start):
            v.assign(value)
        got = _after_one_update(reptile, _episode(SX, SY))
        matches = [i for i, c in enumerate(candidates) if all(np.allclose(g, w, atol=1e-6) for g, w in zip(got, c))]
        assert len(matches) == 1
        seen.add(matches[0])
    # Twelve shuffles of three examples all starting with the same one: 3 * 3**-12.
    assert len(seen) > 1
    # Two steps of one example each are never the same example twice in a row
    # (a shuffle of three, walked in order), unlike two steps on the whole set.
    two = _after_one_update(_learner(1, steps=2, vectorize=vectorize), _episode(SX, SY))
    whole = _after_one_update(_learner(None, steps=2), _episode(SX, SY))
    assert not all(np.allclose(a, b, atol=1e-6) for a, b in zip(two, whole))


def test_inner_batch_size_round_trips_and_is_checked():
    reptile = _learner(2)
    assert reptile.get_config()["inner_batch_size"] == 2
    clone = fewshot.Reptile.from_config(reptile.get_config())
    assert clone.inner_batch_size == 2
    assert fewshot.Reptile.from_config(_learner().get_config()).inner_batch_size is None
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match=f"argument `inner_batch_size`. Expected a positive integer. Received: inner_batch_size={bad!r}"):
            fewshot.Reptile(fewshot.models.mlp(input_shape=(2,), hidden=(4,), outputs=1), inner_batch_size=bad)
    with pytest.raises(ValueError, match="inner_batch_size=-1"):
        reptile.inner_batch_size = -1


def test_setting_inner_batch_size_after_training_takes_effect():
    reptile = _learner(None)
    start = [v.numpy() for v in reptile.backbone.trainable_variables]
    full = _after_one_update(reptile, _episode(SX, SY))
    for v, value in zip(reptile.backbone.trainable_variables, start):
        v.assign(value)
    reptile.inner_batch_size = 1
    one = _after_one_update(reptile, _episode(SX, SY))
    assert not all(np.allclose(a, b, atol=1e-6) for a, b in zip(full, one))
