"""The MeLU-style recommender backbone: embeddings into decision layers."""

import keras
from keras import ops

from fewshot.validation import check_int

_CODES = ("item", "age", "gender", "occupation", "year")


@keras.saving.register_keras_serializable(package="fewshot")
class FeatureEmbedding(keras.layers.Layer):
    """Embeds a rating's feature vector: five codes and genre flags.

    The input is ``[..., 5 + G]``: integer codes ``item, age, gender,
    occupation, year`` stored as floats (0 = unknown), then ``G`` genre
    flags. Each code has its own embedding table; the genres are embedded as
    the mean of the embeddings of the flagged genres. The output concatenates
    the six embeddings, ``[..., 6 * embedding_dim]``. Codes outside a table
    are clipped to it; validating ids is the encoder's job
    (`fewshot.datasets.user_tasks.RatingFeatures`).

    Args:
        vocabulary_sizes: dict with the table size of each code: ``item``,
            ``age``, ``gender``, ``occupation``, ``year``.
        num_genres: number of genre flags ``G``.
        embedding_dim: width of every embedding.
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(self, vocabulary_sizes, num_genres, embedding_dim=32, **kwargs):
        super().__init__(**kwargs)
        missing = [c for c in _CODES if c not in dict(vocabulary_sizes or {})]
        if missing or any(int(vocabulary_sizes[c]) < 1 for c in _CODES):
            raise ValueError(
                "Invalid value received for argument `vocabulary_sizes`. Expected "
                f"a positive size for each of {list(_CODES)}. Received: "
                f"vocabulary_sizes={vocabulary_sizes!r}"
            )
        check_int("num_genres", num_genres, minimum=1)
        check_int("embedding_dim", embedding_dim, minimum=1)
        self.vocabulary_sizes = {c: int(vocabulary_sizes[c]) for c in _CODES}
        self.num_genres = num_genres
        self.embedding_dim = embedding_dim
        # `trainable=False` from a saved config reaches Layer.__init__ before
        # the tables exist: pass it on to them, or a reloaded frozen layer
        # would train (and MetaSGD would expect rates for its tables).
        self.tables = {
            code: keras.layers.Embedding(
                size, embedding_dim, name=f"{code}_embedding", trainable=self.trainable
            )
            for code, size in self.vocabulary_sizes.items()
        }
        self.genre_table = keras.layers.Dense(
            embedding_dim, use_bias=False, name="genre_embedding", trainable=self.trainable
        )

    def build(self, input_shape):
        for table in self.tables.values():
            table.build((None,))
        self.genre_table.build((None, self.num_genres))
        self.built = True

    def call(self, inputs):
        pieces = []
        for i, code in enumerate(_CODES):
            index = ops.cast(ops.round(inputs[..., i]), "int32")
            index = ops.clip(index, 0, self.vocabulary_sizes[code] - 1)
            pieces.append(self.tables[code](index))
        flags = inputs[..., len(_CODES) : len(_CODES) + self.num_genres]
        count = ops.maximum(ops.sum(flags, axis=-1, keepdims=True), 1.0)
        pieces.append(self.genre_table(flags) / count)
        return ops.concatenate(pieces, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (6 * self.embedding_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_sizes": dict(self.vocabulary_sizes),
                "num_genres": self.num_genres,
                "embedding_dim": self.embedding_dim,
            }
        )
        return config


def recommender(
    vocabulary_sizes,
    num_genres,
    embedding_dim=32,
    hidden=(64, 64),
    rating_mean=3.5,
    activation="relu",
    name="recommender",
):
    """A MeLU-style rating predictor: feature embeddings -> decision layers.

    The user and item features go through `FeatureEmbedding` (layer
    ``embedding``), then fully connected *decision layers* named
    ``decision_1``, ``decision_2``, ... and a linear ``head`` that outputs
    the rating. MeLU adapts only the decision layers and the head to each
    user: pass ``adapt_layers=decision_layer_names(model)`` to
    `fewshot.MAML`, or ``["head"]`` for ANIL.

    Args:
        vocabulary_sizes: table size per code (see `FeatureEmbedding`), for
            example ``RatingFeatures.vocabulary_sizes()``.
        num_genres: number of genre flags.
        embedding_dim: width of each embedding.
        hidden: widths of the decision layers.
        rating_mean: initial bias of the head (the mean training rating).
        activation: activation of the decision layers.
        name: model name.

    Returns:
        A built functional `keras.Model` from ``[5 + num_genres]`` feature
        vectors to ``[1]`` ratings.

    Example:

    >>> import fewshot
    >>> sizes = {"item": 10, "age": 8, "gender": 3, "occupation": 5, "year": 10}
    >>> model = fewshot.models.recommender(sizes, num_genres=4, embedding_dim=8)
    >>> model.output_shape
    (None, 1)

    Reference:
        Lee, Im, Jang, Cho and Chung, "MeLU: Meta-Learned User Preference
        Estimator for Cold-Start Recommendation", KDD 2019.
    """
    widths = list(hidden)
    if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(
            "Invalid value received for argument `hidden`. Expected one or more "
            f"positive integer widths. Received: hidden={hidden!r}"
        )
    inputs = keras.Input((len(_CODES) + num_genres,), name="features")
    x = FeatureEmbedding(vocabulary_sizes, num_genres, embedding_dim, name="embedding")(inputs)
    for i, width in enumerate(widths):
        x = keras.layers.Dense(width, activation=activation, name=f"decision_{i + 1}")(x)
    outputs = keras.layers.Dense(
        1, name="head", bias_initializer=keras.initializers.Constant(float(rating_mean))
    )(x)
    return keras.Model(inputs, outputs, name=name)


def decision_layer_names(model):
    """Names of the decision layers and the head of a `recommender` model."""
    return [l.name for l in model.layers if l.name.startswith("decision_") or l.name == "head"]
