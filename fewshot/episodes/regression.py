"""K-shot regression task families."""

import math
import numbers

import tensorflow as tf

from fewshot.episodes.episode import QUERY_X, QUERY_Y, SUPPORT_X, SUPPORT_Y
from fewshot.episodes.seeds import stateless_seed
from fewshot.episodes.stream import EpisodeStream
from fewshot.validation import check_int


def _check_range(name, value, low_limit=None):
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        )
        and value[0] <= value[1]
    )
    if ok and low_limit is not None:
        ok = value[0] >= low_limit
    if not ok:
        bound = f" with low >= {low_limit}" if low_limit is not None else ""
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a pair "
            f"(low, high) of finite numbers with low <= high{bound}. "
            f"Received: {name}={value!r}"
        )
    return (float(value[0]), float(value[1]))


class Sinusoid:
    """The sinusoid regression family of Finn et al. (2017).

    Each task is ``y = amplitude * sin(x - phase)`` with amplitude, phase and
    the inputs drawn uniformly from configurable ranges. Draws use stateless
    random ops, so a seed fixes every task.

    Args:
        amplitude_range: ``(low, high)`` of the amplitude. Default ``(0.1, 5.0)``.
        phase_range: ``(low, high)`` of the phase. Default ``(0, pi)``.
        x_range: ``(low, high)`` of the inputs. Default ``(-5.0, 5.0)``.
        support_shots: K, the labelled points per task. Default 10.
        query_shots: points per task to score the adapted model on.
            Default 10.

    Example:

    >>> import fewshot
    >>> family = fewshot.episodes.Sinusoid(support_shots=5, query_shots=20)
    >>> batch = family.sample(num_tasks=3, seed=0)
    >>> tuple(batch["query_x"].shape)
    (3, 20, 1)

    Reference:
        Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast
        Adaptation of Deep Networks", ICML 2017.
    """

    def __init__(
        self,
        amplitude_range=(0.1, 5.0),
        phase_range=(0.0, math.pi),
        x_range=(-5.0, 5.0),
        support_shots=10,
        query_shots=10,
    ):
        self.amplitude_range = _check_range("amplitude_range", amplitude_range)
        self.phase_range = _check_range("phase_range", phase_range)
        self.x_range = _check_range("x_range", x_range)
        self.support_shots = check_int("support_shots", support_shots, minimum=1)
        self.query_shots = check_int("query_shots", query_shots, minimum=1)

    def get_config(self):
        return {
            "amplitude_range": list(self.amplitude_range),
            "phase_range": list(self.phase_range),
            "x_range": list(self.x_range),
            "support_shots": self.support_shots,
            "query_shots": self.query_shots,
        }

    def sample_parameters(self, num_tasks, seed):
        """Draws ``(amplitude, phase)``, each ``[num_tasks]``, from a seed."""
        seed = stateless_seed(seed)
        keys = tf.random.experimental.stateless_split(seed, 2)
        amplitude = tf.random.stateless_uniform(
            [num_tasks], keys[0], *self.amplitude_range
        )
        phase = tf.random.stateless_uniform([num_tasks], keys[1], *self.phase_range)
        return amplitude, phase

    @staticmethod
    def function(x, amplitude, phase):
        """The task function: ``amplitude * sin(x - phase)``, broadcasting."""
        return amplitude * tf.sin(x - phase)

    def sample(self, num_tasks, seed):
        """Draws a batch of `num_tasks` tasks as an episode dict.

        Args:
            num_tasks: how many tasks (the leading axis).
            seed: an int, or a ``[2]`` integer tensor for stateless ops.

        Returns:
            A dict with ``support_x``/``query_x`` of shape ``[T, K, 1]`` and
            matching ``support_y``/``query_y``, all float32.
        """
        check_int("num_tasks", num_tasks, minimum=1)
        keys = tf.random.experimental.stateless_split(stateless_seed(seed), 3)
        amplitude, phase = self.sample_parameters(num_tasks, keys[0])
        amplitude = amplitude[:, None, None]
        phase = phase[:, None, None]
        sx = tf.random.stateless_uniform(
            [num_tasks, self.support_shots, 1], keys[1], *self.x_range
        )
        qx = tf.random.stateless_uniform(
            [num_tasks, self.query_shots, 1], keys[2], *self.x_range
        )
        return {
            SUPPORT_X: sx,
            SUPPORT_Y: self.function(sx, amplitude, phase),
            QUERY_X: qx,
            QUERY_Y: self.function(qx, amplitude, phase),
        }

    def stream(self, meta_batch_size=25, batches_per_epoch=100, seed=0):
        """An `EpisodeStream` of batches of `meta_batch_size` tasks."""
        check_int("meta_batch_size", meta_batch_size, minimum=1)
        return EpisodeStream(
            lambda s: self.sample(meta_batch_size, s), batches_per_epoch, seed
        )

    def joint_dataset(self, batch_size=250, seed=0):
        """Pooled (x, y) pairs from random tasks, for a non-meta baseline.

        An endless `tf.data.Dataset` of ``(x, y)`` batches where every point
        comes from a freshly drawn task: the "pretrained on all tasks jointly"
        baseline of Finn et al.
        """
        check_int("batch_size", batch_size, minimum=1)

        def draw(index):
            batch = self.sample(batch_size, tf.stack([tf.constant(seed, tf.int64), index]))
            return batch[SUPPORT_X][:, 0], batch[SUPPORT_Y][:, 0]

        return tf.data.Dataset.counter().map(draw).prefetch(tf.data.AUTOTUNE)
