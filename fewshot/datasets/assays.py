"""Few-shot assay tasks: 2-way episodes for meta-training and the test protocol.

Each assay is a binary task (active 1 / inactive 0). For meta-training,
`AssaySampler` draws 2-way episodes from the training assays: a task is an
assay, its support holds `shots` actives and `shots` inactives (balanced),
and its query holds `queries` actives and `queries` inactives (balanced too:
actives are rare, 3-16% on Tox21, and a natural-ratio query of a few dozen
molecules would often hold none). For evaluation, `evaluate_assays` follows
the few-shot Tox21 protocol: `draws` random supports of `shots` actives plus
`shots` inactives per test assay, the query being every other molecule
measured for that assay (its natural ratio), scored with ROC-AUC and
delta-AUPRC (average precision minus the query's fraction of actives).
"""

import numbers

import numpy as np
import tensorflow as tf

from fewshot.episodes.episode import QUERY_X, QUERY_Y, SUPPORT_X, SUPPORT_Y
from fewshot.episodes.seeds import stateless_seed
from fewshot.episodes.stream import EpisodeStream
from fewshot.metrics import mean_ci95
from fewshot.validation import check_finite_rows, check_int


class AssaySampler:
    """Draws 2-way episodes (inactive 0, active 1) from binary assays.

    Args:
        features: float array ``[num_molecules, ...]``.
        labels: array ``[num_molecules, num_tasks]`` of 1, 0 or NaN.
        tasks: indices (columns of `labels`) of the assays to sample from.
        shots: support actives (and inactives) per episode.
        queries: query actives (and inactives) per episode.

    Example:

    >>> import numpy as np
    >>> from fewshot.datasets.assays import AssaySampler
    >>> labels = np.tile([[1.0], [0.0]], (20, 2))
    >>> sampler = AssaySampler(np.random.rand(40, 8), labels, tasks=[0, 1], shots=2, queries=3)
    >>> batch = sampler.sample(num_tasks=4, seed=0)
    >>> tuple(batch["support_x"].shape), tuple(batch["query_y"].shape)
    ((4, 4, 8), (4, 6))
    """

    def __init__(self, features, labels, tasks, shots=10, queries=16):
        shots = check_int("shots", shots, minimum=1)
        queries = check_int("queries", queries, minimum=1)
        features, labels, tasks = check_assays(features, labels, tasks)
        need = shots + queries
        pools = []
        for t in tasks:
            column = labels[:, t]
            negatives = np.flatnonzero(column == 0)
            positives = np.flatnonzero(column == 1)
            if min(len(negatives), len(positives)) < need:
                raise ValueError(
                    f"Task {t} has {len(positives)} actives and {len(negatives)} "
                    f"inactives; shots + queries = {need} of each are needed. "
                    f"Received: shots={shots}, queries={queries}"
                )
            pools.append((negatives, positives))
        self.shots = shots
        self.queries = queries
        self.tasks = tasks
        width = max(max(len(n), len(p)) for n, p in pools)
        index = np.zeros((len(tasks), 2, width), dtype=np.int64)
        counts = np.zeros((len(tasks), 2), dtype=np.int64)
        for i, pool in enumerate(pools):
            for c, members in enumerate(pool):
                index[i, c, : len(members)] = members
                counts[i, c] = len(members)
        self._x = tf.constant(features.astype(np.float32))
        self._index = tf.constant(index)
        self._counts = tf.constant(counts)

    def sample(self, num_tasks, seed):
        """A batch of `num_tasks` episodes (dict of tensors).

        Returns:
            ``support_x [T, 2*shots, ...]``, ``support_y [T, 2*shots]`` (int32:
            inactives first, then actives), ``query_x [T, 2*queries, ...]``,
            ``query_y [T, 2*queries]``.
        """
        num_tasks = check_int("num_tasks", num_tasks, minimum=1)
        k, q = self.shots, self.queries
        keys = tf.random.experimental.stateless_split(stateless_seed(seed), 2)
        chosen = tf.random.stateless_uniform(
            [num_tasks], keys[0], minval=0, maxval=len(self.tasks), dtype=tf.int32
        )
        counts = tf.gather(self._counts, chosen)  # [T, 2]
        width = tf.shape(self._index, out_type=tf.int64)[2]
        noise = tf.random.stateless_uniform([num_tasks, 2, width], keys[1])
        valid = tf.range(width)[None, None, :] < counts[..., None]
        noise = tf.where(valid, noise, 2.0)
        slots = tf.math.top_k(-noise, k=k + q).indices  # [T, 2, K+Q]
        rows = tf.gather(self._index, chosen)  # [T, 2, width]
        picked = tf.gather(rows, slots, batch_dims=2)  # [T, 2, K+Q]
        examples = tf.gather(self._x, picked)  # [T, 2, K+Q, ...]
        labels = tf.broadcast_to(tf.range(2, dtype=tf.int32)[None, :, None], [num_tasks, 2, k + q])
        feature_shape = tf.shape(self._x)[1:]

        def flat(t, lo, hi, with_features):
            shape = [num_tasks, 2 * (hi - lo)]
            if with_features:
                shape = tf.concat([shape, feature_shape], 0)
            return tf.reshape(t[:, :, lo:hi], shape)

        return {
            SUPPORT_X: flat(examples, 0, k, True),
            SUPPORT_Y: flat(labels, 0, k, False),
            QUERY_X: flat(examples, k, k + q, True),
            QUERY_Y: flat(labels, k, k + q, False),
        }

    def stream(self, meta_batch_size=16, batches_per_epoch=100, seed=0):
        """An `EpisodeStream` of batches of `meta_batch_size` episodes."""
        meta_batch_size = check_int("meta_batch_size", meta_batch_size, minimum=1)
        return EpisodeStream(lambda s: self.sample(meta_batch_size, s), batches_per_epoch, seed)


def check_assays(features, labels, tasks):
    """Checks an assay table; returns the features, float32 labels and int tasks.

    Raises:
        ValueError: naming what is wrong: labels not 2-D, a row count that
            differs from the features', non-finite features, labels other
            than 0, 1 and NaN, or task indices that are not label columns.
    """
    features = np.asarray(features)
    labels = np.asarray(labels, dtype=np.float32)
    if labels.ndim != 2:
        raise ValueError(
            "Invalid value received for argument `labels`. Expected a 2-D array "
            f"[num_molecules, num_tasks] of 1, 0 or NaN. Received: labels.shape={labels.shape}"
        )
    if features.ndim < 1 or len(features) != len(labels):
        raise ValueError(
            "Arguments `features` and `labels` must have one row per molecule. "
            f"Received: features.shape={features.shape}, labels.shape={labels.shape}"
        )
    check_finite_rows("features", features, rows="rows")
    measured = labels[~np.isnan(labels)]
    other = np.unique(measured[(measured != 0) & (measured != 1)])
    if len(other):
        raise ValueError(
            "Invalid value received for argument `labels`: expected 1 (active), 0 "
            f"(inactive) or NaN (not measured). Received values: {other[:5].tolist()}"
        )
    tasks = list(tasks)
    valid = range(labels.shape[1])
    if not tasks or any(
        isinstance(t, bool) or not isinstance(t, numbers.Integral) or t not in valid for t in tasks
    ):
        raise ValueError(
            "Invalid value received for argument `tasks`. Expected a non-empty list of "
            f"label column indices in [0, {labels.shape[1] - 1}]. Received: tasks={tasks!r}"
        )
    return features, labels, [int(t) for t in tasks]


def short_of_supports(labels, shots):
    """``(actives, inactives)`` of one assay if too few for `support_draws`, else None.

    A support holds `shots` actives and `shots` inactives, and the query (the
    other measured molecules) must still hold one of each.
    """
    actives, inactives = int((labels == 1).sum()), int((labels == 0).sum())
    return (actives, inactives) if min(actives, inactives) <= shots else None


def support_draws(labels, shots, draws, seed=0, max_query=None):
    """Random supports for one assay, as in the few-shot Tox21 protocol.

    Args:
        labels: ``[num_molecules]`` of 1, 0 or NaN for one assay.
        shots: actives (and inactives) per support.
        draws: how many supports to draw.
        seed: integer seed.
        max_query: if set, each query is a random subset of at most this
            many of the other measured molecules (for cheap validation; the
            test protocol uses them all).

    Returns:
        A list of ``(support_rows, support_y, query_rows, query_y)``: the
        support holds `shots` inactives then `shots` actives; the query is
        every other measured molecule.
    """
    shots = check_int("shots", shots, minimum=1)
    draws = check_int("draws", draws, minimum=1)
    labels = np.asarray(labels, dtype=np.float32)
    if labels.ndim != 1:
        raise ValueError(
            "Invalid value received for argument `labels`. Expected one assay's "
            f"labels [num_molecules]. Received: labels.shape={labels.shape}"
        )
    short = short_of_supports(labels, shots)
    if short:
        raise ValueError(
            f"An assay with {short[0]} actives and {short[1]} "
            f"inactives cannot give supports of {shots} of each and a query "
            f"holding both. Received: shots={shots}"
        )
    negatives = np.flatnonzero(labels == 0)
    positives = np.flatnonzero(labels == 1)
    measured = np.flatnonzero(~np.isnan(labels))
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        support = np.concatenate(
            [rng.choice(negatives, shots, replace=False), rng.choice(positives, shots, replace=False)]
        )
        query = np.setdiff1d(measured, support)
        if max_query is not None and len(query) > max_query:
            query = np.sort(rng.choice(query, max_query, replace=False))
        out.append(
            (support, np.repeat([0, 1], shots).astype(np.int32), query, labels[query].astype(np.int32))
        )
    return out


def assay_scores(y_true, scores):
    """``(roc_auc_percent, delta_auprc)`` of one query set (scikit-learn)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ValueError(
            f"Invalid value received for argument `scores`: "
            f"{int((~np.isfinite(scores)).sum())} are NaN or infinite."
        )
    auc = 100.0 * roc_auc_score(y_true, scores)
    dauprc = average_precision_score(y_true, scores) - float(np.mean(y_true))
    return float(auc), float(dauprc)


def evaluate_assays(
    score_fn, features, labels, tasks, shots=10, draws=20, seed=0, on_draw=None, max_query=None
):
    """Runs the few-shot assay protocol for one scoring method.

    Args:
        score_fn: ``score_fn(support_x, support_y, query_x) -> scores`` where
            a higher score means "more likely active".
        features: ``[num_molecules, ...]`` features.
        labels: ``[num_molecules, num_tasks]`` of 1, 0 or NaN.
        tasks: indices of the test assays.
        shots: support actives (and inactives).
        draws: supports drawn per assay.
        seed: seed of the draws (the same for every method, so every method
            sees the same supports).
        on_draw: optional callback ``on_draw(task, draw, y_true, scores)``.
        max_query: cap on the query size (see `support_draws`); None uses
            every other measured molecule, as the protocol says.

    Returns:
        ``{"roc_auc": {task: [per-draw values]}, "delta_auprc": {...},
        "summary": {"roc_auc": (mean, ci95), "delta_auprc": (mean, ci95)}}``.
        The summary is the mean over tasks of each task's mean over draws;
        its interval is over all ``tasks x draws`` values.

    Example:

    >>> import numpy as np
    >>> from fewshot.datasets.assays import evaluate_assays
    >>> x = np.random.rand(60, 3); y = (x[:, :1] > 0.5).astype("float32")
    >>> result = evaluate_assays(lambda sx, sy, qx: qx[:, 0], x, y, [0], shots=2, draws=3)
    >>> result["summary"]["roc_auc"][0]
    100.0
    """
    features, labels, tasks = check_assays(features, labels, tasks)
    per = {"roc_auc": {}, "delta_auprc": {}}
    for i, task in enumerate(tasks):
        aucs, dauprcs = [], []
        for d, (s_rows, s_y, q_rows, q_y) in enumerate(
            support_draws(labels[:, task], shots, draws, seed=seed * 1000 + i, max_query=max_query)
        ):
            scores = np.asarray(score_fn(features[s_rows], s_y, features[q_rows])).reshape(-1)
            auc, dauprc = assay_scores(q_y, scores)
            aucs.append(auc)
            dauprcs.append(dauprc)
            if on_draw is not None:
                on_draw(task, d, q_y, scores)
        per["roc_auc"][task] = aucs
        per["delta_auprc"][task] = dauprcs
    per["summary"] = {metric: summarize_draws(values) for metric, values in per.items()}
    return per


def summarize_draws(values_by_task):
    """``(mean, ci95)``: the mean over tasks of each task's mean over draws,
    with the 95% interval over all ``tasks x draws`` values."""
    task_means = [np.mean(v) for v in values_by_task.values()]
    _, half = mean_ci95(np.concatenate([np.asarray(v, float) for v in values_by_task.values()]))
    return float(np.mean(task_means)), half
