"""Class- and task-disjoint splits, fixed by a seed."""

import math

import numpy as np


def split_classes(classes, fractions=(0.7, 0.1, 0.2), seed=0):
    """Splits class (or task) labels into disjoint groups, fixed by `seed`.

    Args:
        classes: an ordered sequence of distinct labels (classes for vision,
            tasks for assays, users for personalisation); not a set, whose
            order changes between processes.
        fractions: the share of each group, for example ``(train, validation,
            test)``; must be positive and sum to 1.
        seed: the seed of the permutation.

    Returns:
        A tuple of numpy arrays, one per fraction, disjoint and together
        holding every label. Each group has at least one label.

    Example:

    >>> from fewshot.episodes import split_classes
    >>> train, val, test = split_classes(range(10), (0.6, 0.2, 0.2), seed=0)
    >>> len(train), len(val), len(test)
    (6, 2, 2)
    """
    if isinstance(classes, (set, frozenset, str, bytes)):
        # A set's order changes from one process to the next (string hashing),
        # so the same seed would give different splits; a string is one label.
        raise ValueError(
            "Invalid value received for argument `classes`. Expected an ordered "
            "sequence of labels (for example sorted(labels)). Received: a "
            f"{type(classes).__name__}"
        )
    classes = np.asarray(list(classes))
    fractions = tuple(float(f) for f in fractions)
    if (
        not fractions
        or not all(math.isfinite(f) for f in fractions)
        or min(fractions) <= 0
        or abs(sum(fractions) - 1) > 1e-6
    ):
        raise ValueError(
            "Invalid value received for argument `fractions`. Expected "
            "positive shares that sum to 1. Received: "
            f"fractions={fractions}"
        )
    if len(np.unique(classes)) != len(classes):
        raise ValueError(
            "Invalid value received for argument `classes`: labels repeat. "
            f"Received: {len(classes)} labels, {len(np.unique(classes))} distinct"
        )
    if len(classes) < len(fractions):
        raise ValueError(
            f"Invalid value received for argument `classes`: {len(fractions)} "
            f"groups need at least as many labels. Received: {len(classes)} labels"
        )
    order = np.random.default_rng(seed).permutation(len(classes))
    bounds = np.round(np.cumsum(fractions) * len(classes)).astype(int)
    bounds[-1] = len(classes)
    # Every group keeps at least one label.
    for i in range(len(bounds) - 1):
        low = (bounds[i - 1] if i else 0) + 1
        high = len(classes) - (len(bounds) - 1 - i)
        bounds[i] = min(max(bounds[i], low), high)
    return tuple(np.split(classes[order], bounds[:-1]))
