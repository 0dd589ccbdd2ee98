"""Prototypical networks: classify by distance to class-mean embeddings."""

import keras
import tensorflow as tf

from fewshot.algorithms.metric_heads import (
    SupportDistanceLogits,
    check_distance,
    class_prototypes,
    metric_classifier,
    num_classes_of,
    pairwise_distance,
)
from fewshot.algorithms.metric_learner import MetricLearner, check_class_labels
from fewshot.validation import check_positive_float


def check_temperature(temperature):
    return float(check_positive_float("temperature", temperature))


@keras.saving.register_keras_serializable(package="fewshot")
class PrototypicalNetwork(MetricLearner):
    """Prototypical networks: a class is the mean embedding of its examples.

    An encoder maps examples to an embedding space. For each task the
    prototype of class ``n`` is the mean embedding of its support examples,
    and a query's logits are its negative distances to the prototypes divided
    by ``temperature``. Meta-training minimises the compiled loss (usually
    sparse categorical cross-entropy on these logits) over the query sets, so
    the encoder learns an embedding where classes cluster. There is no inner
    loop: adapting to a task is computing its prototypes. The number of
    classes of a task is read from its support labels, which must be
    ``0..N-1``.

    The encoder runs with ``training=True`` during meta-training (batch
    normalisation uses batch statistics and updates its moving averages) and
    ``training=False`` in evaluation and `adapt`.

    Args:
        encoder: a built Keras model mapping inputs to embeddings (any
            output shape; it is flattened).
        distance: ``"euclidean"`` (squared, as Snell et al.) or ``"cosine"``
            (``1 - cosine similarity``). Default "euclidean".
        temperature: positive divisor of the distances; cosine distances
            lie in [0, 2], so a small value such as 0.1 suits them. Default 1.
        **kwargs: passed to `keras.Model`.

    Example:

    >>> import numpy as np, keras, fewshot
    >>> encoder = fewshot.models.mlp(input_shape=(4,), hidden=(16,), outputs=8)
    >>> protonet = fewshot.PrototypicalNetwork(encoder)
    >>> protonet.compile(optimizer="adam",
    ...     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...     metrics=["accuracy"])
    >>> x = np.random.rand(60, 4).astype("float32"); y = np.repeat(np.arange(6), 10)
    >>> stream = fewshot.episodes.EpisodeSampler(x, y, ways=3, shots=2, queries=3).stream(
    ...     meta_batch_size=2, batches_per_epoch=2)
    >>> history = protonet.fit(stream, epochs=1, verbose=0)
    >>> classifier = protonet.adapt(x[[0, 1, 10, 11, 20, 21]], [0, 0, 1, 1, 2, 2])
    >>> classifier.predict(x[:5], verbose=0).shape
    (5, 3)

    Reference:
        Snell, Swersky and Zemel, "Prototypical Networks for Few-shot
        Learning", NeurIPS 2017.
    """

    _traced_settings = ("distance", "temperature")

    def __init__(self, encoder, distance="euclidean", temperature=1.0, **kwargs):
        super().__init__(encoder, **kwargs)
        self.distance = check_distance(distance)
        self.temperature = check_temperature(temperature)

    def get_config(self):
        config = super().get_config()
        config.update({"distance": self.distance, "temperature": self.temperature})
        return config

    def logits_from_embeddings(self, support_z, support_y, query_z):
        """Logits ``[T, Q, N]`` from embedded support ``[T, S, D]`` and queries."""
        num_classes = num_classes_of(support_y)
        prototypes = class_prototypes(support_z, support_y, num_classes)
        return -pairwise_distance(query_z, prototypes, self.distance) / self.temperature

    def adapt(self, support_x, support_y, steps=None):
        """A Keras classifier for one task: encoder + fixed prototypes head.

        Args:
            support_x: ``[S, ...]`` support inputs of one task.
            support_y: ``[S]`` integer labels ``0..N-1``.
            steps: ignored (prototypes need no gradient steps); accepted for
                the common `adapt` signature.

        Returns:
            A `keras.Model` mapping inputs to ``[batch, N]`` logits. Its
            encoder is a copy, so training it leaves the meta-weights as
            they are.
        """
        sx, sy = self._check_support(support_x, support_y)
        labels = check_class_labels(sy)
        support_z = tf.convert_to_tensor(self.embed(sx))
        prototypes = class_prototypes(support_z, labels, int(labels.numpy().max()) + 1)
        head = SupportDistanceLogits(
            prototypes.numpy(), distance=self.distance, temperature=self.temperature, name="prototypes"
        )
        return metric_classifier(self._encoder_copy(), head, name="prototype_classifier")

