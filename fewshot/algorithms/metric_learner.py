"""The common part of metric learners: an encoder, embeddings, query logits.

`PrototypicalNetwork` and `SiameseNetwork` differ only in how support and
query embeddings become logits (`logits_from_embeddings`) and in their
training loss; embedding tasks and examples, the config round trip and the
copy of the encoder that `adapt` hands out live here.
"""

import keras
import numpy as np
import tensorflow as tf

from fewshot.algorithms.maml import clone_backbone
from fewshot.algorithms.meta_learner import MetaLearner
from fewshot.episodes.episode import QUERY_X, SUPPORT_X, SUPPORT_Y


def embed_episodes(encoder, support_x, query_x, training):
    """Embeds support ``[T, S, ...]`` and query ``[T, Q, ...]`` in one encoder call.

    One batch, as in Snell et al.'s implementation: in training mode,
    BatchNorm normalises the support and the queries with the same batch
    statistics and updates its moving averages once per step.

    Returns:
        ``(support_z [T, S, D], query_z [T, Q, D])``.
    """
    support_shape, query_shape = tf.shape(support_x), tf.shape(query_x)
    support = tf.reshape(support_x, tf.concat([[-1], support_shape[2:]], 0))
    query = tf.reshape(tf.cast(query_x, support.dtype), tf.concat([[-1], query_shape[2:]], 0))
    z = encoder(tf.concat([support, query], 0), training=training)
    z = tf.reshape(z, [tf.shape(z)[0], -1])
    count = tf.shape(support)[0]
    return (
        tf.reshape(z[:count], [support_shape[0], support_shape[1], -1]),
        tf.reshape(z[count:], [query_shape[0], query_shape[1], -1]),
    )


def embed_in_batches(encoder, x, batch_size=256):
    """Inference-mode embeddings ``[num_examples, D]`` (numpy) of `x`."""
    x = tf.convert_to_tensor(x)
    parts = []
    for start in range(0, int(x.shape[0]), batch_size):
        z = encoder(x[start : start + batch_size], training=False)
        parts.append(tf.reshape(z, [tf.shape(z)[0], -1]))
    return tf.concat(parts, 0).numpy()


def check_class_labels(labels):
    """`labels` as int32, or an error unless they are a 1-D array of exactly 0..N-1.

    Float labels must hold whole numbers (``1.0``, not ``0.5``): they are not
    truncated. A ``[S, 1]`` column is refused, not flattened.
    """
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(
            "Invalid value received for argument `support_y`. Expected a 1-D array "
            "of integer class labels 0..N-1, one per support example. Received: "
            f"support_y.shape={array.shape}"
        )
    if np.issubdtype(array.dtype, np.floating) and (array != np.round(array)).any():
        bad = sorted(set(array[array != np.round(array)].tolist()))
        raise ValueError(
            "Invalid value received for argument `support_y`. Expected integer "
            f"class labels 0..N-1. Received: non-integer labels {bad[:5]}"
        )
    labels = tf.cast(array, tf.int32)
    values = labels.numpy()
    present = set(values.tolist())
    if values.min() < 0 or present != set(range(values.max() + 1)):
        raise ValueError(
            "Invalid value received for argument `support_y`. Expected integer "
            "class labels 0..N-1, each present at least once. Received: "
            f"labels {sorted(present)}"
        )
    return labels


class _EncoderMixin:
    """A learner whose backbone is an encoder, saved under the config key ``"encoder"``.

    Mixed into `MetricLearner` and `FineTuner` (before `MetaLearner`): the
    ``encoder`` property, and the config round trip that renames
    ``"backbone"``.
    """

    @property
    def encoder(self):
        return self.backbone

    def get_config(self):
        config = super().get_config()
        config["encoder"] = config.pop("backbone")
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


class MetricLearner(_EncoderMixin, MetaLearner):
    """Base of the learners that classify queries by distances in an embedding.

    (`PrototypicalNetwork`, `SiameseNetwork`.) `FineTuner` is not one: its
    `adapt` fine-tunes a linear head, and it exports no embedding endpoint.

    Subclasses implement `logits_from_embeddings` (and their loss); the
    encoder is the learner's backbone, saved under the config key
    ``"encoder"``.
    """

    def logits_from_embeddings(self, support_z, support_y, query_z):
        """Logits ``[T, Q, N]`` from embedded support ``[T, S, D]`` and queries."""
        raise NotImplementedError

    def query_predictions(self, episodes, training=False):
        support_z, query_z = embed_episodes(
            self.backbone, episodes[SUPPORT_X], episodes[QUERY_X], training
        )
        return self.logits_from_embeddings(support_z, episodes[SUPPORT_Y], query_z)

    def embed(self, x, batch_size=256):
        """Embeddings ``[num_examples, D]`` of `x` (inference mode)."""
        return embed_in_batches(self.backbone, x, batch_size)

    def _encoder_copy(self):
        """An independent copy of the encoder with the current meta-weights."""
        return clone_backbone(self.backbone, [tf.convert_to_tensor(v) for v in self.backbone.trainable_variables])
