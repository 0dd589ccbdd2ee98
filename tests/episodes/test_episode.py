import numpy as np
import pytest

from fewshot.episodes import validate_episode


def _batch(**shapes):
    base = {"support_x": (2, 5, 3), "support_y": (2, 5), "query_x": (2, 4, 3), "query_y": (2, 4)}
    base.update(shapes)
    return {k: np.zeros(s) for k, s in base.items()}


def test_valid_batch_passes():
    assert validate_episode(_batch()) is not None


def test_missing_key():
    batch = _batch()
    del batch["query_y"]
    with pytest.raises(ValueError, match=r"missing keys \['query_y'\]"):
        validate_episode(batch)


def test_task_axes_disagree():
    with pytest.raises(ValueError, match=r"support_x.shape=\(2, 5, 3\), support_y.shape=\(3, 5\)"):
        validate_episode(_batch(support_y=(3, 5)))


def test_feature_shapes_disagree():
    with pytest.raises(ValueError, match="same feature shape"):
        validate_episode(_batch(query_x=(2, 4, 2)))


def test_not_a_dict():
    with pytest.raises(ValueError, match="Received: x of type list"):
        validate_episode([1, 2])


def test_support_and_query_targets_must_match():
    batch = {
        "support_x": np.zeros((2, 5, 1)), "support_y": np.zeros((2, 5)),
        "query_x": np.zeros((2, 4, 1)), "query_y": np.zeros((2, 4, 7)),
    }
    with pytest.raises(ValueError, match=r"same shape per example. Received: support_y.shape=\(2, 5\)"):
        validate_episode(batch)
