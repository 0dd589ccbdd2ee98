"""N-way K-shot Q-query classification episodes as `tf.data` pipelines."""

import numpy as np
import tensorflow as tf

from fewshot.episodes.episode import QUERY_X, QUERY_Y, SUPPORT_X, SUPPORT_Y
from fewshot.episodes.seeds import stateless_seed
from fewshot.episodes.stream import EpisodeStream
from fewshot.validation import check_finite_rows, check_int, first_few


class EpisodeSampler:
    """Samples N-way K-shot Q-query classification episodes.

    Holds a class-indexed store of examples (padded to the largest class, with
    per-class counts) and draws each episode with stateless random ops: N
    distinct classes, then K + Q distinct examples of each. Labels are
    remapped to ``0..N-1`` in the order the classes were drawn, so every
    episode is a fresh N-way problem.

    Args:
        x: array ``[num_examples, ...]`` of inputs.
        y: array ``[num_examples]`` of integer (or string) class labels.
        ways: N, classes per episode.
        shots: K, support examples per class.
        queries: Q, query examples per class.

    Example:

    >>> import numpy as np
    >>> import fewshot
    >>> x = np.random.rand(60, 4).astype("float32")
    >>> y = np.repeat(np.arange(6), 10)
    >>> sampler = fewshot.episodes.EpisodeSampler(x, y, ways=3, shots=2, queries=4)
    >>> batch = sampler.sample(num_tasks=2, seed=0)
    >>> tuple(batch["support_x"].shape), tuple(batch["query_y"].shape)
    ((2, 6, 4), (2, 12))
    """

    def __init__(self, x, y, ways=5, shots=1, queries=15):
        x = np.asarray(x)
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(
                "Invalid value received for argument `y`. Expected a 1-D array "
                f"of class labels. Received: y.shape={y.shape}"
            )
        if x.ndim < 1 or x.shape[0] != y.shape[0]:
            raise ValueError(
                "Arguments `x` and `y` must have the same number of examples. "
                f"Received: x.shape={x.shape}, y.shape={y.shape}"
            )
        check_finite_rows("x", x)
        self.classes, counts, index = group_rows(y, "y", "labels")
        self.ways = check_int("ways", ways, minimum=1)
        self.shots = check_int("shots", shots, minimum=1)
        self.queries = check_int("queries", queries, minimum=0)
        if len(self.classes) < ways:
            raise ValueError(
                f"Invalid value received for argument `ways`: there are only "
                f"{len(self.classes)} classes. Received: ways={ways}"
            )
        need = shots + queries
        short = self.classes[counts < need]
        if len(short):
            shown = first_few(short)
            raise ValueError(
                f"{len(short)} of {len(self.classes)} classes have fewer than shots + queries = "
                f"{need} examples ({shown}; the smallest has {counts.min()}). Keep only classes "
                f"with at least {need} examples, or lower `shots` or `queries`. "
                f"Received: shots={shots}, queries={queries}"
            )
        self._x = tf.constant(x)
        self._index = tf.constant(index)
        self._counts = tf.constant(counts, tf.int64)

    @classmethod
    def from_classes(cls, examples_by_class, ways=5, shots=1, queries=15):
        """Builds a sampler from a class-indexed store.

        Args:
            examples_by_class: a mapping ``{class_label: array [n_c, ...]}``.
            ways, shots, queries: as in the constructor.
        """
        if not examples_by_class:
            raise ValueError(
                "Invalid value received for argument `examples_by_class`. "
                "Expected a non-empty mapping of class label to examples. "
                f"Received: examples_by_class={examples_by_class!r}"
            )
        labels, arrays = zip(*examples_by_class.items())
        arrays = [np.asarray(a) for a in arrays]
        shapes = {a.shape[1:] for a in arrays}
        if len(shapes) != 1:
            raise ValueError(
                "Invalid value received for argument `examples_by_class`: the "
                "classes' examples have different shapes. "
                f"Received: shapes={sorted(shapes)}"
            )
        x = np.concatenate(arrays)
        y = np.repeat(np.asarray(labels), [len(a) for a in arrays])
        return cls(x, y, ways=ways, shots=shots, queries=queries)

    @property
    def num_classes(self):
        return len(self.classes)

    def sample(self, num_tasks, seed):
        """Draws `num_tasks` episodes as one batch (dict of tensors).

        Returns:
            ``support_x [T, N*K, ...]``, ``support_y [T, N*K]`` (int32),
            ``query_x [T, N*Q, ...]``, ``query_y [T, N*Q]``.
        """
        check_int("num_tasks", num_tasks, minimum=1)
        n, k, q = self.ways, self.shots, self.queries
        keys = tf.random.experimental.stateless_split(stateless_seed(seed), 2)
        num_classes = tf.shape(self._counts, out_type=tf.int64)[0]
        # N distinct classes per task: the N smallest of uniform scores.
        scores = tf.random.stateless_uniform([num_tasks, num_classes], keys[0])
        chosen = tf.math.top_k(-scores, k=n).indices  # [T, N]
        counts = tf.gather(self._counts, chosen)  # [T, N]
        width = tf.shape(self._index, out_type=tf.int64)[1]
        # K+Q distinct examples per class; padding slots never win.
        noise = tf.random.stateless_uniform([num_tasks, n, width], keys[1])
        valid = tf.range(width)[None, None, :] < counts[..., None]
        noise = tf.where(valid, noise, 2.0)
        slots = tf.math.top_k(-noise, k=k + q).indices  # [T, N, K+Q]
        rows = tf.gather(self._index, chosen)  # [T, N, width]
        picked = tf.gather(rows, slots, batch_dims=2)  # [T, N, K+Q]
        examples = tf.gather(self._x, picked)  # [T, N, K+Q, ...]
        labels = tf.broadcast_to(
            tf.range(n, dtype=tf.int32)[None, :, None], [num_tasks, n, k + q]
        )
        feature_shape = tf.shape(self._x)[1:]

        def flat(t, lo, hi, with_features):
            part = t[:, :, lo:hi]
            shape = [num_tasks, n * (hi - lo)]
            if with_features:
                shape = tf.concat([shape, feature_shape], 0)
            return tf.reshape(part, shape)

        return {
            SUPPORT_X: flat(examples, 0, k, True),
            SUPPORT_Y: flat(labels, 0, k, False),
            QUERY_X: flat(examples, k, k + q, True),
            QUERY_Y: flat(labels, k, k + q, False),
        }

    def stream(self, meta_batch_size=32, batches_per_epoch=100, seed=0):
        """An `EpisodeStream` of batches of `meta_batch_size` episodes."""
        check_int("meta_batch_size", meta_batch_size, minimum=1)
        return EpisodeStream(
            lambda s: self.sample(meta_batch_size, s), batches_per_epoch, seed
        )


def group_rows(labels, name, what):
    """The rows of each distinct label, padded to the largest group.

    Args:
        labels: array ``[num_rows]`` of group labels (classes, task ids).
        name, what: the argument and what its values are, for the message.

    Returns:
        ``(groups, counts, index)``: the sorted distinct labels, each one's
        row count, and ``int64 [num_groups, max(counts)]`` row indices (in
        row order; the padding repeats row 0 and is never drawn).

    Raises:
        ValueError: `labels` holds NaN or None.
    """
    missing = _missing_labels(labels)
    if missing:
        raise ValueError(
            f"Invalid value received for argument `{name}`: it holds missing {what} "
            f"(NaN or None). Received: {missing} missing {what} of {len(labels)}"
        )
    groups, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    index = np.zeros((len(groups), counts.max()), np.int64)
    start = 0
    for g, n in enumerate(counts):
        index[g, :n] = order[start : start + n]
        start += n
    return groups, counts, index


def _missing_labels(y):
    """How many labels are NaN or None (an empty cell of a pandas column)."""
    if np.issubdtype(y.dtype, np.floating):
        return int(np.isnan(y).sum())
    if y.dtype == object:
        return sum(v is None or (isinstance(v, float) and np.isnan(v)) for v in y)
    return 0
