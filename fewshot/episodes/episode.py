"""The episode structure: a batch of few-shot tasks as a dict of tensors.

A batch of ``T`` tasks is a dict with four entries, each with a leading task
axis:

- ``support_x``: ``[T, S, ...]`` the labelled examples the learner adapts on.
- ``support_y``: ``[T, S, ...]`` their targets.
- ``query_x``: ``[T, Q, ...]`` the examples the adapted learner is scored on.
- ``query_y``: ``[T, Q, ...]`` their targets.

An episode may also carry ``support_weight``: ``[T, S]`` weights of the
support examples, 1 for a real example and 0 for padding, when tasks with
support sets of different sizes are padded to one width. Learners that
honour it (`fewshot.MAML` and its subclasses' inner loop) take the support
loss as the weighted mean over real examples; the other keys are unchanged.

``MetaLearner.fit`` receives such a dict as ``x`` (no ``y``).
"""

import numpy as np
import tensorflow as tf

SUPPORT_X = "support_x"
SUPPORT_Y = "support_y"
QUERY_X = "query_x"
QUERY_Y = "query_y"
EPISODE_KEYS = (SUPPORT_X, SUPPORT_Y, QUERY_X, QUERY_Y)
# Optional: [T, S] weights of the support examples (1 real, 0 padding).
SUPPORT_WEIGHT = "support_weight"


def validate_episode(batch, name="x"):
    """Checks that `batch` is a well-formed batch of episodes.

    Args:
        batch: a dict with the keys ``support_x``, ``support_y``, ``query_x``
            and ``query_y``, each a tensor or array with a leading task axis.
        name: the argument name used in error messages.

    Returns:
        The same dict, unchanged.

    Raises:
        ValueError: if a key is missing, a value is not at least 2-D, the
            task and example axes disagree, or support and query differ in
            their feature or target shape.

    Example:

    >>> import numpy as np
    >>> from fewshot.episodes import validate_episode
    >>> batch = {k: np.zeros((2, 5, 1), "float32") for k in
    ...          ("support_x", "support_y", "query_x", "query_y")}
    >>> sorted(validate_episode(batch))
    ['query_x', 'query_y', 'support_x', 'support_y']
    """
    if not isinstance(batch, dict):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a dict "
            f"with keys {list(EPISODE_KEYS)}. Received: {name} of type "
            f"{type(batch).__name__}"
        )
    missing = [k for k in EPISODE_KEYS if k not in batch]
    if missing:
        raise ValueError(
            f"Invalid value received for argument `{name}`: missing keys "
            f"{missing}. Expected keys {list(EPISODE_KEYS)}. "
            f"Received: keys={sorted(batch)}"
        )
    shapes = {k: tuple(_shape(batch[k])) for k in EPISODE_KEYS}
    for key, shape in shapes.items():
        if len(shape) < 2:
            raise ValueError(
                f"Invalid value received for argument `{name}`: `{key}` must "
                "have a task axis and an example axis, [tasks, examples, "
                f"...]. Received: {key}.shape={shape}"
            )
    _check_same(shapes, SUPPORT_X, SUPPORT_Y, axes=2, name=name)
    _check_same(shapes, QUERY_X, QUERY_Y, axes=2, name=name)
    _check_same(shapes, SUPPORT_X, QUERY_X, axes=1, name=name)
    if shapes[SUPPORT_X][2:] != shapes[QUERY_X][2:]:
        raise ValueError(
            f"Invalid value received for argument `{name}`: support and query "
            "examples must have the same feature shape. Received: "
            f"support_x.shape={shapes[SUPPORT_X]}, "
            f"query_x.shape={shapes[QUERY_X]}"
        )
    target_s, target_q = shapes[SUPPORT_Y][2:], shapes[QUERY_Y][2:]
    if len(target_s) != len(target_q) or any(
        a is not None and b is not None and a != b for a, b in zip(target_s, target_q)
    ):
        raise ValueError(
            f"Invalid value received for argument `{name}`: support and query "
            "targets must have the same shape per example. Received: "
            f"support_y.shape={shapes[SUPPORT_Y]}, query_y.shape={shapes[QUERY_Y]}"
        )
    return batch


def _shape(value):
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return value.shape.as_list()
    return np.shape(value)


def _check_same(shapes, a, b, axes, name):
    head_a, head_b = shapes[a][:axes], shapes[b][:axes]
    if any(x is not None and y is not None and x != y for x, y in zip(head_a, head_b)):
        raise ValueError(
            f"Invalid value received for argument `{name}`: `{a}` and `{b}` "
            f"disagree on their first {axes} axes. Received: "
            f"{a}.shape={shapes[a]}, {b}.shape={shapes[b]}"
        )
