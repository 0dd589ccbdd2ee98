import numpy as np
import pytest

from fewshot.episodes import split_classes


def test_disjoint_complete_and_seeded():
    groups = split_classes(range(100), (0.7, 0.1, 0.2), seed=3)
    assert [len(g) for g in groups] == [70, 10, 20]
    joined = np.concatenate(groups)
    assert sorted(joined.tolist()) == list(range(100))
    again = split_classes(range(100), (0.7, 0.1, 0.2), seed=3)
    other = split_classes(range(100), (0.7, 0.1, 0.2), seed=4)
    assert all((a == b).all() for a, b in zip(groups, again))
    assert not (groups[0] == other[0]).all()


def test_every_group_gets_a_label():
    groups = split_classes(["a", "b", "c"], (0.9, 0.05, 0.05), seed=0)
    assert [len(g) for g in groups] == [1, 1, 1]


def test_bad_fractions():
    with pytest.raises(ValueError, match=r"Received: fractions=\(0.5, 0.2\)"):
        split_classes(range(10), (0.5, 0.2))
    with pytest.raises(ValueError, match=r"Received: fractions=\(nan, 0.5, 0.5\)"):
        split_classes(range(10), (float("nan"), 0.5, 0.5))


def test_repeated_labels():
    with pytest.raises(ValueError, match="labels repeat"):
        split_classes([1, 1, 2], (0.5, 0.5))


@pytest.mark.parametrize("classes", [{"a", "b", "c"}, frozenset({1, 2, 3}), "abc"])
def test_unordered_or_string_classes_are_refused(classes):
    # A set's order depends on string hashing, so a seed would not fix the split.
    with pytest.raises(ValueError, match="argument `classes`. Expected an ordered sequence"):
        split_classes(classes, (0.5, 0.5), seed=0)
