"""Siamese networks: a contrastive embedding, nearest-support classification."""

import keras
import tensorflow as tf

from fewshot.algorithms.metric_heads import (
    SupportDistanceLogits,
    metric_classifier,
    nearest_support_distance,
    num_classes_of,
    pairwise_distance,
)
from fewshot.algorithms.metric_learner import MetricLearner, check_class_labels, embed_episodes
from fewshot.episodes.episode import QUERY_X, QUERY_Y, SUPPORT_X, SUPPORT_Y
from fewshot.validation import check_positive_float


def contrastive_loss(distance, same, margin):
    """The contrastive loss of Hadsell, Chopra and LeCun (2006), per pair.

    ``0.5 * d**2`` for a pair of the same class and
    ``0.5 * max(0, margin - d)**2`` otherwise, with ``d`` the Euclidean
    distance of the pair's embeddings.

    Args:
        distance: Euclidean distances of the pairs.
        same: booleans, True where the pair shares a class.
        margin: the margin of dissimilar pairs.

    Example:

    >>> import tensorflow as tf
    >>> from fewshot.algorithms.siamese import contrastive_loss
    >>> contrastive_loss(tf.constant([0.5, 0.5]), tf.constant([True, False]), 1.0).numpy()
    array([0.125, 0.125], dtype=float32)
    """
    same = tf.cast(same, distance.dtype)
    hinge = tf.maximum(margin - distance, 0.0)
    return 0.5 * (same * tf.square(distance) + (1.0 - same) * tf.square(hinge))


@keras.saving.register_keras_serializable(package="fewshot")
class SiameseNetwork(MetricLearner):
    """Siamese networks: learn a distance from pairs, classify by nearest example.

    Meta-training draws every pair of examples within each episode (support
    and query together), labels it "same" when the two share a class, and
    minimises the contrastive loss of their embeddings' Euclidean distance;
    positive and negative pairs are weighted equally (each a mean), since an
    N-way episode holds about N times more negative pairs. A query is
    classified by its nearest support example: its logit for class ``n`` is
    minus the squared distance to the closest support example of class ``n``.

    The reported ``loss`` is the contrastive loss (in `fit` and `evaluate`);
    the loss given to `compile` is not used for training and may be omitted.
    Metrics such as ``"accuracy"`` score the nearest-support logits of the
    query sets.

    Args:
        encoder: a built Keras model mapping inputs to embeddings.
        margin: positive margin of the contrastive loss. Default 1.0.
        **kwargs: passed to `keras.Model`.

    Example:

    >>> import numpy as np, fewshot
    >>> encoder = fewshot.models.mlp(input_shape=(4,), hidden=(16,), outputs=8)
    >>> siamese = fewshot.SiameseNetwork(encoder, margin=1.0)
    >>> siamese.compile(optimizer="adam", metrics=["accuracy"])
    >>> x = np.random.rand(60, 4).astype("float32"); y = np.repeat(np.arange(6), 10)
    >>> stream = fewshot.episodes.EpisodeSampler(x, y, ways=3, shots=2, queries=3).stream(
    ...     meta_batch_size=2, batches_per_epoch=2)
    >>> history = siamese.fit(stream, epochs=1, verbose=0)
    >>> classifier = siamese.adapt(x[[0, 10, 20]], [0, 1, 2])
    >>> classifier.predict(x[:5], verbose=0).shape
    (5, 3)

    Reference:
        Koch, Zemel and Salakhutdinov, "Siamese Neural Networks for One-shot
        Image Recognition", ICML Deep Learning Workshop 2015; the loss:
        Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an
        Invariant Mapping", CVPR 2006.
    """

    _traced_settings = ("margin",)

    def __init__(self, encoder, margin=1.0, **kwargs):
        super().__init__(encoder, **kwargs)
        self.margin = float(check_positive_float("margin", margin))

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """As `MetaLearner.compile`; `loss` defaults to cross-entropy on logits.

        Training always minimises the contrastive loss; `loss` is kept only
        for the common contract.
        """
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["margin"] = self.margin
        return config

    # ------------------------------------------------------------- training
    def pair_loss(self, episodes, training):
        """Mean contrastive loss over the pairs of each episode, and logits."""
        support_z, query_z = embed_episodes(
            self.backbone, episodes[SUPPORT_X], episodes[QUERY_X], training
        )
        z = tf.concat([support_z, query_z], axis=1)  # [T, M, D]
        labels = tf.concat(
            [tf.cast(episodes[SUPPORT_Y], tf.int32), tf.cast(episodes[QUERY_Y], tf.int32)], axis=1
        )
        distance = tf.sqrt(pairwise_distance(z, z, "euclidean") + 1e-12)
        same = tf.equal(labels[:, :, None], labels[:, None, :])
        m = tf.shape(z)[1]
        upper = tf.linalg.band_part(tf.ones([m, m], tf.bool), 0, -1)
        upper = tf.logical_and(upper, tf.logical_not(tf.eye(m, dtype=tf.bool)))[None]
        losses = contrastive_loss(distance, same, self.margin)
        pos = tf.cast(tf.logical_and(upper, same), losses.dtype)
        neg = tf.cast(tf.logical_and(upper, tf.logical_not(same)), losses.dtype)
        loss = 0.5 * (
            tf.math.divide_no_nan(tf.reduce_sum(losses * pos), tf.reduce_sum(pos))
            + tf.math.divide_no_nan(tf.reduce_sum(losses * neg), tf.reduce_sum(neg))
        )
        logits = self._logits(support_z, episodes[SUPPORT_Y], query_z)
        return loss, logits

    def _logits(self, support_z, support_y, query_z):
        distance = pairwise_distance(query_z, support_z, "euclidean")
        return -nearest_support_distance(distance, support_y, num_classes_of(support_y))

    def meta_loss(self, episodes, training=True):
        return self.pair_loss(episodes, training)

    def logits_from_embeddings(self, support_z, support_y, query_z):
        """Nearest-support logits ``[T, Q, N]`` from precomputed embeddings."""
        return self._logits(support_z, support_y, query_z)

    def adapt(self, support_x, support_y, steps=None):
        """A Keras classifier for one task: encoder + nearest-support head.

        Args:
            support_x: ``[S, ...]`` support inputs of one task.
            support_y: ``[S]`` integer labels ``0..N-1``.
            steps: ignored; accepted for the common `adapt` signature.

        Returns:
            A `keras.Model` mapping inputs to ``[batch, N]`` logits (minus
            the distance to the nearest support example of each class).
        """
        sx, sy = self._check_support(support_x, support_y)
        labels = check_class_labels(sy)
        head = SupportDistanceLogits(
            self.embed(sx), labels=labels.numpy(), mode="nearest", name="nearest_support"
        )
        return metric_classifier(self._encoder_copy(), head, name="nearest_support_classifier")
