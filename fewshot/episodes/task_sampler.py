"""K-shot regression episodes from a table of tasks: rows grouped by a task id."""

import numpy as np
import tensorflow as tf

from fewshot.episodes.episode import QUERY_X, QUERY_Y, SUPPORT_X, SUPPORT_Y
from fewshot.episodes.seeds import stateless_seed
from fewshot.episodes.sampler import group_rows
from fewshot.episodes.stream import EpisodeStream
from fewshot.validation import check_finite_rows, check_int, first_few


class TaskSampler:
    """Samples K-shot Q-query episodes from rows grouped into tasks.

    The regression counterpart of `EpisodeSampler`: a task is every row
    that shares a task id (a user, a sensor, a site, an assay with a
    continuous readout), and an episode is one task drawn uniformly, with
    K + Q distinct rows of it drawn at random, the first K the support set
    and the other Q the query set. Targets keep their values, so a MAML
    learner compiled with a regression loss meta-trains on the stream as on
    `Sinusoid`'s.

    Args:
        x: array ``[num_rows, ...]`` of inputs.
        y: array ``[num_rows]`` or ``[num_rows, outputs]`` of float targets.
        tasks: array ``[num_rows]`` of task ids (integers or strings).
        shots: K, support rows per episode.
        queries: Q, query rows per episode.

    Raises:
        ValueError: mismatched lengths, NaN or infinite values, missing task
            ids, or tasks with fewer than K + Q rows (named: filter them out
            first, for example with pandas ``groupby(...).filter``).

    Example:

    >>> import numpy as np
    >>> import fewshot
    >>> x = np.linspace(-1, 1, 60).reshape(60, 1)
    >>> tasks = np.repeat(["a", "b", "c"], 20)
    >>> y = x[:, 0] * np.repeat([1.0, 2.0, 3.0], 20)      # each task its own slope
    >>> sampler = fewshot.episodes.TaskSampler(x, y, tasks, shots=5, queries=10)
    >>> batch = sampler.sample(num_tasks=4, seed=0)
    >>> tuple(batch["support_x"].shape), tuple(batch["query_y"].shape)
    ((4, 5, 1), (4, 10, 1))
    """

    def __init__(self, x, y, tasks, shots=10, queries=10):
        x, y = _floats("x", x), _floats("y", y)
        tasks = np.asarray(tasks)
        if y.ndim == 1:
            y = y[:, None]
        if x.ndim < 2 or y.ndim != 2 or tasks.ndim != 1 or not len(x) == len(y) == len(tasks):
            raise ValueError(
                "Arguments `x`, `y` and `tasks` must have one entry per row (x at least 2-D, y 1-D "
                f"or 2-D, tasks 1-D). Received: x.shape={x.shape}, y.shape={y.shape}, "
                f"tasks.shape={tasks.shape}"
            )
        check_finite_rows("x", x, rows="rows")
        check_finite_rows("y", y, rows="rows")
        self.tasks, counts, index = group_rows(tasks, "tasks", "task ids")
        self.shots = check_int("shots", shots, minimum=1)
        self.queries = check_int("queries", queries, minimum=1)
        need = self.shots + self.queries
        small = self.tasks[counts < need]
        if len(small):
            shown = first_few(small)
            raise ValueError(
                f"{len(small)} of {len(self.tasks)} tasks have fewer than shots + queries = {need} rows "
                f"({shown}; the smallest has {counts.min()}). Keep only tasks with at least {need} rows, "
                f"or lower `shots` or `queries`. Received: shots={shots}, queries={queries}"
            )
        self._x = tf.constant(x)
        self._y = tf.constant(y)
        self._index = tf.constant(index)
        self._counts = tf.constant(counts, tf.int64)

    @classmethod
    def from_frame(cls, frame, task, target, features=None, shots=10, queries=10):
        """Builds a sampler from a pandas DataFrame (for example `pandas.read_csv`'s).

        Args:
            frame: the table, one row per example.
            task: the column holding each row's task id.
            target: the target column, or a list of them.
            features: the input columns; default every other numeric column.
            shots, queries: as in the constructor.

        Example:

        >>> import pandas as pd
        >>> from fewshot.episodes import TaskSampler
        >>> frame = pd.DataFrame({"site": ["a"] * 6 + ["b"] * 6, "t": range(12), "load": range(12)})
        >>> sampler = TaskSampler.from_frame(frame, task="site", target="load", shots=2, queries=3)
        >>> list(sampler.tasks), sampler.feature_columns
        (['a', 'b'], ['t'])
        """
        from pandas.api.types import is_bool_dtype, is_numeric_dtype

        def numeric(column):
            return is_numeric_dtype(frame[column]) and not is_bool_dtype(frame[column])

        targets = [target] if isinstance(target, str) else list(target)
        columns = [task, *targets, *(features or [])]
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise ValueError(
                f"The table has no column {', '.join(map(repr, absent))}. Its columns: "
                f"{list(map(str, frame.columns))}. Received: task={task!r}, target={target!r}, features={features!r}"
            )
        if features is None:
            features = [c for c in frame.columns if c != task and c not in targets and numeric(c)]
            if not features:
                raise ValueError(
                    f"The table has no numeric column besides task {task!r} and target {target!r} to use "
                    "as inputs. Name them with `features=`. Received: features=None"
                )
        for column in [*features, *targets]:
            bad = [] if numeric(column) else frame.index[~frame[column].map(_is_number)].tolist()
            if bad:
                raise ValueError(
                    f"Column {column!r} must hold numbers; rows {bad[:5]}{' ...' if len(bad) > 5 else ''} "
                    f"do not (e.g. {frame[column].loc[bad[0]]!r}). Received: {column!r}"
                )
        sampler = cls(frame[features].to_numpy(np.float32), frame[targets].to_numpy(np.float32),
                      frame[task].to_numpy(), shots=shots, queries=queries)
        sampler.feature_columns, sampler.target_columns = list(features), targets
        return sampler

    @property
    def num_tasks(self):
        return len(self.tasks)

    def sample(self, num_tasks, seed):
        """Draws `num_tasks` episodes as one batch (dict of tensors).

        Returns:
            ``support_x [T, K, ...]``, ``support_y [T, K, outputs]``,
            ``query_x [T, Q, ...]``, ``query_y [T, Q, outputs]``.
        """
        check_int("num_tasks", num_tasks, minimum=1)
        k, q = self.shots, self.queries
        keys = tf.random.experimental.stateless_split(stateless_seed(seed), 2)
        chosen = tf.random.stateless_uniform(
            [num_tasks], keys[0], minval=0, maxval=len(self.tasks), dtype=tf.int64
        )
        counts = tf.gather(self._counts, chosen)  # [T]
        width = tf.shape(self._index, out_type=tf.int64)[1]
        noise = tf.random.stateless_uniform([num_tasks, width], keys[1])
        noise = tf.where(tf.range(width)[None, :] < counts[:, None], noise, 2.0)  # padding never wins
        slots = tf.math.top_k(-noise, k=k + q).indices  # [T, K+Q], distinct rows of the task
        rows = tf.gather(tf.gather(self._index, chosen), slots, batch_dims=1)
        x, y = tf.gather(self._x, rows), tf.gather(self._y, rows)
        return {SUPPORT_X: x[:, :k], SUPPORT_Y: y[:, :k], QUERY_X: x[:, k:], QUERY_Y: y[:, k:]}

    def stream(self, meta_batch_size=25, batches_per_epoch=100, seed=0):
        """An `EpisodeStream` of batches of `meta_batch_size` episodes."""
        check_int("meta_batch_size", meta_batch_size, minimum=1)
        return EpisodeStream(lambda s: self.sample(meta_batch_size, s), batches_per_epoch, seed)


def _floats(name, values):
    try:
        return np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected numbers. Received: {error}"
        ) from None


def _is_number(value):
    try:
        return np.isfinite(float(value))
    except (TypeError, ValueError):
        return False
