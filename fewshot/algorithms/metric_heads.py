"""Distances between embeddings and the fixed classifier heads built from them.

The metric learners (`PrototypicalNetwork`, `SiameseNetwork`) classify a query
by its distance to embedded support examples. The functions here compute those
distances for a batch of tasks; the layers turn one task's support embeddings
into a plain Keras head, so `adapt` can return an ordinary classifier.
"""

import keras
import tensorflow as tf

from fewshot.validation import check_positive_float

DISTANCES = ("euclidean", "cosine")
HEAD_MODES = ("prototype", "nearest")


def check_distance(distance):
    if distance not in DISTANCES:
        raise ValueError(
            "Invalid value received for argument `distance`. Expected one of "
            f"{list(DISTANCES)}. Received: distance={distance!r}"
        )
    return distance


def pairwise_distance(a, b, distance):
    """Distances between rows of `a` ``[..., M, D]`` and `b` ``[..., N, D]``.

    ``"euclidean"`` gives the squared Euclidean distance (as Snell et al.
    use); ``"cosine"`` gives ``1 - cosine similarity``.

    Returns:
        A tensor ``[..., M, N]``.
    """
    if distance == "cosine":
        a = tf.math.l2_normalize(a, axis=-1)
        b = tf.math.l2_normalize(b, axis=-1)
        return 1.0 - tf.matmul(a, b, transpose_b=True)
    sq_a = tf.reduce_sum(tf.square(a), -1)[..., :, None]
    sq_b = tf.reduce_sum(tf.square(b), -1)[..., None, :]
    return tf.maximum(sq_a - 2.0 * tf.matmul(a, b, transpose_b=True) + sq_b, 0.0)


def class_prototypes(embeddings, labels, num_classes):
    """Mean embedding of each class: ``[..., S, D]`` -> ``[..., N, D]``."""
    one_hot = tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=embeddings.dtype)
    sums = tf.matmul(one_hot, embeddings, transpose_a=True)
    counts = tf.reduce_sum(one_hot, axis=-2)[..., None]
    return sums / tf.maximum(counts, 1.0)


def nearest_support_distance(distances, labels, num_classes):
    """For each query, the distance to the nearest support example per class.

    Args:
        distances: ``[..., Q, S]`` query-to-support distances.
        labels: ``[..., S]`` integer support labels in ``0..N-1``.
        num_classes: N.

    Returns:
        ``[..., Q, N]``.
    """
    one_hot = tf.one_hot(tf.cast(labels, tf.int32), num_classes) > 0.5  # [..., S, N]
    big = tf.reduce_max(distances) + 1e6
    masked = tf.where(one_hot[..., None, :, :], distances[..., :, :, None], big)
    return tf.reduce_min(masked, axis=-2)


def num_classes_of(labels):
    """N, from integer labels ``0..N-1`` (a scalar tensor)."""
    return tf.cast(tf.reduce_max(labels), tf.int32) + 1


@keras.saving.register_keras_serializable(package="fewshot")
class SupportDistanceLogits(keras.layers.Layer):
    """Logits ``-distance / temperature`` of embeddings to fixed references.

    With ``mode="prototype"`` the references are class prototypes (one per
    class); with ``mode="nearest"`` they are support embeddings with labels,
    and a class's logit uses its nearest support example.

    Args:
        references: ``[R, D]`` array of reference embeddings.
        labels: ``[R]`` integer labels of the references (``mode="nearest"``
            only; for prototypes the row index is the class).
        distance: ``"euclidean"`` or ``"cosine"``.
        temperature: positive divisor of the distances.
        mode: ``"prototype"`` or ``"nearest"``.
    """

    def __init__(
        self, references, labels=None, distance="euclidean", temperature=1.0, mode="prototype", **kwargs
    ):
        super().__init__(**kwargs)
        if mode not in HEAD_MODES:
            raise ValueError(
                "Invalid value received for argument `mode`. Expected one of "
                f"{list(HEAD_MODES)}. Received: mode={mode!r}"
            )
        if mode == "nearest" and labels is None:
            raise ValueError(
                "Argument `labels` is required with mode='nearest' (the class of "
                "each reference). Received: labels=None"
            )
        self.distance = check_distance(distance)
        self.temperature = float(check_positive_float("temperature", temperature))
        self.mode = mode
        refs = tf.convert_to_tensor(references, tf.float32)
        self.references = self.add_weight(
            shape=refs.shape, initializer="zeros", trainable=False, name="references"
        )
        self.references.assign(refs)
        if mode == "nearest":
            lab = tf.convert_to_tensor(labels, tf.int32)
            self.labels = self.add_weight(
                shape=lab.shape, initializer="zeros", trainable=False, dtype="int32", name="labels"
            )
            self.labels.assign(lab)
            self.num_classes = int(tf.reduce_max(lab)) + 1
        else:
            self.labels = None
            self.num_classes = int(refs.shape[0])

    def call(self, embeddings):
        refs = tf.cast(self.references, embeddings.dtype)
        distances = pairwise_distance(embeddings, refs, self.distance)
        if self.mode == "nearest":
            distances = nearest_support_distance(distances, self.labels, self.num_classes)
        return -distances / self.temperature

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_classes,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "references": keras.ops.convert_to_numpy(self.references).tolist(),
                "labels": None
                if self.labels is None
                else keras.ops.convert_to_numpy(self.labels).tolist(),
                "distance": self.distance,
                "temperature": self.temperature,
                "mode": self.mode,
            }
        )
        return config


def metric_classifier(encoder, head, name):
    """``input -> encoder -> flatten -> head`` as one functional Keras model.

    The embeddings are flattened as in training (`embed_episodes`), so an
    encoder of any output shape works.
    """
    inputs = keras.Input(encoder.input_shape[1:])
    embeddings = keras.layers.Flatten()(encoder(inputs, training=False))
    return keras.Model(inputs, head(embeddings), name=name)
