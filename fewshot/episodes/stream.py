"""A reproducible, epoch-aware stream of episode batches."""

import keras
import tensorflow as tf

from fewshot.validation import check_int, check_seed


class EpisodeStream:
    """A seeded stream of episode batches that resumes exactly.

    Every batch is drawn with stateless random ops keyed on ``(seed, epoch,
    batch index)``, so the tasks seen in epoch ``e`` are the same whether
    training ran straight through or was interrupted and resumed by
    `keras.callbacks.BackupAndRestore`. Pass the stream itself to
    `MetaLearner.fit` (it adds its own callback, which tells the stream which
    epoch Keras is in), or use `dataset` and `callback` with plain Keras.

    Args:
        sample_fn: a function of a ``[2]`` int64 seed tensor returning one
            episode batch (a dict of tensors), written with stateless random
            ops (``tf.random.stateless_*``).
        batches_per_epoch: how many batches make one epoch.
        seed: the integer seed of the whole stream.

    Example:

    >>> import fewshot
    >>> stream = fewshot.episodes.Sinusoid(support_shots=5).stream(
    ...     meta_batch_size=4, batches_per_epoch=2, seed=0)
    >>> batch = next(iter(stream.dataset))
    >>> tuple(batch["support_x"].shape)
    (4, 5, 1)
    """

    def __init__(self, sample_fn, batches_per_epoch, seed=0):
        self.sample_fn = sample_fn
        self.batches_per_epoch = check_int("batches_per_epoch", batches_per_epoch, minimum=1)
        self.seed = check_seed("seed", seed)
        with tf.init_scope():
            self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._dataset = None

    @property
    def epoch(self):
        """The epoch the next iteration of `dataset` draws from."""
        return int(self._epoch.numpy())

    def set_epoch(self, epoch):
        """Makes the next iteration of `dataset` draw epoch `epoch`."""
        self._epoch.assign(int(epoch))

    @property
    def dataset(self):
        """A `tf.data.Dataset` of `batches_per_epoch` episode batches."""
        if self._dataset is None:
            n, seed, epoch = self.batches_per_epoch, self.seed, self._epoch

            def draw(index):
                step = epoch * n + index
                return self.sample_fn(tf.stack([tf.constant(seed, tf.int64), step]))

            self._dataset = (
                tf.data.Dataset.range(n)
                .map(draw, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .prefetch(tf.data.AUTOTUNE)
            )
        return self._dataset

    @property
    def callback(self):
        """A Keras callback that keeps the stream's epoch in step with `fit`."""
        return _EpochSync(self)

    def take(self, num_batches, epoch=0):
        """Returns a list of `num_batches` fixed batches, as numpy dicts.

        Useful for evaluation sets that must not change between calls.
        """
        seed = tf.constant(self.seed, tf.int64)
        out = []
        for i in range(num_batches):
            step = tf.constant(epoch * self.batches_per_epoch + i, tf.int64)
            batch = self.sample_fn(tf.stack([seed, step]))
            out.append({k: v.numpy() for k, v in batch.items()})
        return out


class _EpochSync(keras.callbacks.Callback):
    def __init__(self, stream):
        super().__init__()
        self.stream = stream

    def on_epoch_begin(self, epoch, logs=None):
        self.stream.set_epoch(epoch)
