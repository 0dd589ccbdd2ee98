import re

import numpy as np
import pytest

from fewshot.episodes import EpisodeSampler


def _data(classes=8, per_class=10, dim=3):
    # Each example encodes its class in feature 0 and its index in feature 1.
    x = np.zeros((classes * per_class, dim), "float32")
    y = np.repeat(np.arange(classes) * 10, per_class)  # labels 0, 10, 20...
    x[:, 0] = y
    x[:, 1] = np.arange(len(y))
    return x, y


def test_episode_structure():
    x, y = _data()
    sampler = EpisodeSampler(x, y, ways=4, shots=2, queries=3)
    batch = {k: v.numpy() for k, v in sampler.sample(num_tasks=5, seed=0).items()}
    assert batch["support_x"].shape == (5, 8, 3)
    assert batch["query_x"].shape == (5, 12, 3)
    for t in range(5):
        sy, qy = batch["support_y"][t], batch["query_y"][t]
        assert sorted(set(sy)) == [0, 1, 2, 3] and sorted(set(qy)) == [0, 1, 2, 3]
        assert np.bincount(sy).tolist() == [2] * 4 and np.bincount(qy).tolist() == [3] * 4
        # Labels are remapped consistently: one original class per episode label.
        for label in range(4):
            originals = set(batch["support_x"][t][sy == label, 0]) | set(
                batch["query_x"][t][qy == label, 0]
            )
            assert len(originals) == 1
        # Distinct classes, and support and query never share an example.
        classes = {batch["support_x"][t][sy == c, 0][0] for c in range(4)}
        assert len(classes) == 4
        ids_s = set(batch["support_x"][t][:, 1])
        ids_q = set(batch["query_x"][t][:, 1])
        assert len(ids_s) == 8 and len(ids_q) == 12 and not ids_s & ids_q


def test_unequal_class_sizes_never_pick_padding():
    x, y = _data(classes=5, per_class=10)
    keep = np.ones(len(y), bool)
    keep[y == 0] = np.arange(10) < 4  # class 0 has just 4 examples
    sampler = EpisodeSampler(x[keep], y[keep], ways=5, shots=2, queries=2)
    batch = sampler.sample(num_tasks=20, seed=1)
    ids = batch["support_x"].numpy()[..., 1].ravel().tolist()
    assert set(ids) <= set(x[keep][:, 1].tolist())


def test_from_classes_and_seed():
    store = {"a": np.ones((6, 2)), "b": np.zeros((6, 2)), "c": np.full((6, 2), 2.0)}
    sampler = EpisodeSampler.from_classes(store, ways=2, shots=1, queries=1)
    a = sampler.sample(3, seed=4)["support_x"].numpy()
    b = sampler.sample(3, seed=4)["support_x"].numpy()
    np.testing.assert_array_equal(a, b)


def test_too_few_examples_for_the_shots():
    x, y = _data(classes=6, per_class=4)
    # The same wording as TaskSampler's: how many are short, of how many, and what to do.
    with pytest.raises(ValueError, match=r"6 of 6 classes have fewer than shots \+ queries = 5 examples "
                                         r"\(.*; the smallest has 4\)\. Keep only classes with at least 5 "
                                         r"examples, or lower `shots` or `queries`\. Received: shots=2, queries=3"):
        EpisodeSampler(x, y, ways=3, shots=2, queries=3)


def test_more_ways_than_classes():
    x, y = _data(classes=3)
    with pytest.raises(ValueError, match="there are only 3 classes. Received: ways=5"):
        EpisodeSampler(x, y, ways=5)


def test_shapes_that_disagree():
    x, y = _data()
    with pytest.raises(ValueError, match=r"Received: x.shape=\(80, 3\), y.shape=\(79,\)"):
        EpisodeSampler(x, y[:-1])


def test_nan_inputs_are_reported():
    x, y = _data()
    x[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values. Received: 1 non-finite"):
        EpisodeSampler(x, y, ways=2)


def test_missing_labels_are_reported():
    x, y = _data()
    labels = y.astype("float64")
    labels[[2, 5]] = np.nan
    with pytest.raises(ValueError, match="missing labels \\(NaN or None\\). Received: 2 missing labels of 80"):
        EpisodeSampler(x, labels, ways=2)
    names = np.array([f"c{v}" for v in y], dtype=object)
    names[7] = None  # an empty cell of a pandas column
    with pytest.raises(ValueError, match="Received: 1 missing labels of 80"):
        EpisodeSampler(x, names, ways=2)


def test_numpy_integers_and_seeds_are_accepted_and_bad_seeds_named():
    x, y = _data()
    sampler = EpisodeSampler(x, y, ways=np.int64(3), shots=np.int32(2), queries=np.int64(1))
    assert sampler.ways == 3 and type(sampler.ways) is int
    first = sampler.sample(np.int64(2), np.int64(7))
    np.testing.assert_array_equal(first["support_x"], sampler.sample(2, 7)["support_x"])
    np.testing.assert_array_equal(first["support_x"], sampler.sample(2, np.array([7, 0]))["support_x"])
    for seed in (1.5, "7", [1, 2, 3], True):
        with pytest.raises(ValueError, match="argument `seed`.*" + re.escape(f"Received: seed={seed!r}")):
            sampler.sample(2, seed)
