"""The graph isomorphism network (GIN) over packed RDKit molecular graphs."""

import keras
import tensorflow as tf

from fewshot.datasets.graph_features import ATOM_FIELDS, BOND_TYPES, atom_vocabulary
from fewshot.validation import check_int

POOLINGS = ("sum", "mean")
NORMS = ("layer", "none")


@keras.saving.register_keras_serializable(package="fewshot")
class GraphIsomorphismNetwork(keras.layers.Layer):
    """Embeds molecules given as packed graph rows with GIN layers.

    The input is ``[N, dim]``: rows written by
    `fewshot.datasets.graph_features.GraphFeaturizer` with the same
    `max_atoms`, `max_degree` and `fingerprint_size`. The layer unpacks them
    into one disjoint union of the batch's molecules (only real atoms, so a
    batch costs what its atoms cost, not ``N * max_atoms``), one-hot encodes
    the atom codes, and applies `depth` GIN layers

        h_v <- relu(norm(MLP((1 + eps) h_v + sum_{u in N(v)} m_uv)))

    with a 2-layer MLP, a learned ``eps`` per layer, ``m_uv = h_u``, or with
    ``edge_features=True`` ``m_uv = relu(h_u + e_uv)`` for a learned
    embedding ``e`` of the bond type (GINE). LayerNorm (``norm="layer"``)
    rather than BatchNorm, so that inner loops (MAML) need no batch
    statistics. The graph embedding is the masked sum or mean of the last
    layer's atom states, hence invariant to the order of the atoms. With
    ``fingerprint_size > 0`` the row's Morgan counts also pass through a
    ``Dense(fingerprint_units, relu)`` branch concatenated to the graph
    embedding (a hybrid encoder).

    Args:
        max_atoms: atom slots per row.
        max_degree: neighbour slots per atom.
        units: width of the atom states and of the MLPs.
        depth: number of GIN layers.
        fingerprint_size: fingerprint bits at the end of each row (0: none).
        fingerprint_units: width of the fingerprint branch.
        edge_features: add bond-type embeddings to the messages.
        pooling: ``"sum"`` or ``"mean"`` over the atoms.
        norm: ``"layer"`` (LayerNorm after each MLP) or ``"none"``.
        **kwargs: passed to `keras.layers.Layer`.

    Returns (when called):
        ``[N, units + fingerprint_units]`` graph embeddings (``[N, units]``
        without a fingerprint branch).

    Example:

    >>> import numpy as np
    >>> from fewshot.datasets.graph_features import GraphFeaturizer
    >>> from fewshot.models.graph import GraphIsomorphismNetwork
    >>> featurizer = GraphFeaturizer(max_atoms=16, max_degree=4)
    >>> rows, valid, _ = featurizer(["CCO", "c1ccccc1O"])
    >>> gin = GraphIsomorphismNetwork(max_atoms=16, max_degree=4, units=32, depth=2)
    >>> tuple(gin(rows).shape)
    (2, 32)

    Reference:
        Xu, Hu, Leskovec and Jegelka, "How Powerful are Graph Neural
        Networks?", ICLR 2019; GINE: Hu et al., "Strategies for Pre-training
        Graph Neural Networks", ICLR 2020.
    """

    # Queries per forward pass when a learner scores with this layer
    # (`MetaLearner.query_batch_size`): the per-batch edge tensors of 512
    # molecules stay in cache, 1.3x faster than 2048 on Tox21
    # (benchmarks/scoring.py).
    scoring_batch_size = 512

    def __init__(
        self,
        max_atoms,
        max_degree=6,
        units=128,
        depth=3,
        fingerprint_size=0,
        fingerprint_units=512,
        edge_features=False,
        pooling="mean",
        norm="layer",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_int("max_atoms", max_atoms, minimum=1)
        check_int("max_degree", max_degree, minimum=1)
        check_int("units", units, minimum=1)
        check_int("depth", depth, minimum=1)
        check_int("fingerprint_size", fingerprint_size, minimum=0)
        check_int("fingerprint_units", fingerprint_units, minimum=1)
        for name, value, choices in (("pooling", pooling, POOLINGS), ("norm", norm, NORMS)):
            if value not in choices:
                raise ValueError(
                    f"Invalid value received for argument `{name}`. Expected one of "
                    f"{list(choices)}. Received: {name}={value!r}"
                )
        self.max_atoms = max_atoms
        self.max_degree = max_degree
        self.units = units
        self.depth = depth
        self.fingerprint_size = fingerprint_size
        self.fingerprint_units = fingerprint_units
        self.edge_features = bool(edge_features)
        self.pooling = pooling
        self.norm = norm
        self._vocabulary = atom_vocabulary(max_degree)
        self._graph_dim = max_atoms * (len(ATOM_FIELDS) + 2 * max_degree)
        # `trainable=False` from a saved config reaches Layer.__init__ before
        # the sublayers exist: pass it on (as FeatureEmbedding does).
        t = self.trainable
        self.atom_embedding = keras.layers.Dense(units, name="atom_embedding", trainable=t)
        self.mlp_in = [keras.layers.Dense(units, activation="relu", name=f"gin_{i + 1}_a", trainable=t)
                       for i in range(depth)]
        self.mlp_out = [keras.layers.Dense(units, name=f"gin_{i + 1}_b", trainable=t) for i in range(depth)]
        self.norms = (
            [keras.layers.LayerNormalization(name=f"gin_{i + 1}_norm", trainable=t) for i in range(depth)]
            if norm == "layer" else []
        )
        self.bond_embedding = (
            # One-hot bond types times a kernel (an embedding with dense
            # gradients, which the fine-tuner's and MAML's inner loops add up).
            [keras.layers.Dense(units, use_bias=False, name=f"gin_{i + 1}_bond", trainable=t)
             for i in range(depth)]
            if self.edge_features else []
        )
        self.fingerprint_dense = (
            keras.layers.Dense(fingerprint_units, activation="relu", name="fingerprint_dense", trainable=t)
            if fingerprint_size else None
        )

    @property
    def input_dim(self):
        """Length of the rows this layer reads."""
        return self._graph_dim + self.fingerprint_size

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.input_dim:
            raise ValueError(
                "Invalid input received by GraphIsomorphismNetwork: rows of "
                f"max_atoms * {len(ATOM_FIELDS) + 2 * self.max_degree} + "
                f"fingerprint_size = {self.input_dim} values were expected (max_atoms="
                f"{self.max_atoms}, max_degree={self.max_degree}, fingerprint_size="
                f"{self.fingerprint_size}). Received: input_shape={tuple(input_shape)}"
            )
        self.atom_embedding.build((None, sum(self._vocabulary)))
        self.eps = self.add_weight(shape=(self.depth,), initializer="zeros", name="eps")
        for i in range(self.depth):
            self.mlp_in[i].build((None, self.units))
            self.mlp_out[i].build((None, self.units))
            if self.norms:
                self.norms[i].build((None, self.units))
            if self.bond_embedding:
                self.bond_embedding[i].build((None, len(BOND_TYPES)))
        if self.fingerprint_dense is not None:
            self.fingerprint_dense.build((None, self.fingerprint_size))
        self.built = True

    def call(self, inputs, training=None):
        x = tf.convert_to_tensor(inputs, dtype=self.compute_dtype)
        a, d, f = self.max_atoms, self.max_degree, len(ATOM_FIELDS)
        num_graphs = tf.shape(x)[0]
        codes = tf.cast(tf.round(tf.reshape(x[:, : a * f], [-1, f])), tf.int32)  # [B*A, F]
        present = codes[:, 0] > 0
        slots = tf.cast(tf.where(present)[:, 0], tf.int32)  # [N] slot of each real atom
        num_nodes = tf.shape(slots)[0]
        node_of_slot = tf.cumsum(tf.cast(present, tf.int32)) - 1
        graph = slots // a  # [N] molecule of each atom

        # Atom codes (shifted by one) -> multi-hot over the fields -> Dense.
        codes = tf.gather(codes, slots) - 1
        offsets, upper, start = [], [], 0
        for size in self._vocabulary:
            offsets.append(start)
            upper.append(size - 1)
            start += size
        codes = tf.clip_by_value(codes, 0, tf.constant(upper, tf.int32)) + tf.constant(offsets, tf.int32)
        multi_hot = tf.reduce_sum(tf.one_hot(codes, start, dtype=x.dtype), axis=1)
        h = self.atom_embedding(multi_hot)

        # Neighbour slots -> an edge list of the union (each bond twice,
        # once from each end): `target` gathers from `source`.
        def slot_block(lo, hi):
            block = tf.cast(tf.round(tf.reshape(x[:, lo:hi], [-1, d])), tf.int32)
            return tf.gather(block, slots)  # [N, D]

        neighbours = slot_block(a * f, a * (f + d))
        edges = tf.cast(tf.where(neighbours >= 0), tf.int32)  # [E, 2]: (node, slot)
        target = edges[:, 0]
        source_slot = tf.gather(graph, target) * a + tf.gather_nd(neighbours, edges)
        source = tf.gather(node_of_slot, source_slot)
        if self.edge_features:
            bonds = tf.gather_nd(slot_block(a * (f + d), self._graph_dim), edges)
            bonds = tf.one_hot(tf.clip_by_value(bonds, 0, len(BOND_TYPES) - 1), len(BOND_TYPES),
                               dtype=x.dtype)  # [E, 4]

        for i in range(self.depth):
            messages = tf.gather(h, source)  # [E, U]
            if self.edge_features:
                messages = tf.nn.relu(messages + self.bond_embedding[i](bonds))
            total = tf.math.unsorted_segment_sum(messages, target, num_nodes)
            z = (1.0 + self.eps[i]) * h + total
            z = self.mlp_out[i](self.mlp_in[i](z))
            if self.norms:
                z = self.norms[i](z)
            h = tf.nn.relu(z)

        pooled = tf.math.unsorted_segment_sum(h, graph, num_graphs)
        if self.pooling == "mean":
            count = tf.math.unsorted_segment_sum(tf.ones_like(h[:, :1]), graph, num_graphs)
            pooled = pooled / tf.maximum(count, 1.0)
        if self.fingerprint_dense is None:
            return pooled
        return tf.concat([pooled, self.fingerprint_dense(x[:, self._graph_dim :])], axis=-1)

    def compute_output_shape(self, input_shape):
        width = self.units + (self.fingerprint_units if self.fingerprint_size else 0)
        return (input_shape[0], width)

    def get_config(self):
        config = super().get_config()
        config.update(
            max_atoms=self.max_atoms,
            max_degree=self.max_degree,
            units=self.units,
            depth=self.depth,
            fingerprint_size=self.fingerprint_size,
            fingerprint_units=self.fingerprint_units,
            edge_features=self.edge_features,
            pooling=self.pooling,
            norm=self.norm,
        )
        return config


def gin_encoder(
    max_atoms,
    max_degree=6,
    units=128,
    depth=3,
    embedding=128,
    hidden=(),
    dropout=0.0,
    fingerprint_size=0,
    fingerprint_units=512,
    edge_features=False,
    pooling="mean",
    norm="layer",
    name="gin_encoder",
):
    """A GIN over packed graph rows, then optional Dense layers and a linear head.

    ``input -> GraphIsomorphismNetwork -> [Dropout -> Dense(relu)] x
    len(hidden) -> Dropout -> Dense(embedding)``. The last layer is named
    ``head`` (so ANIL adapts it), as in `fewshot.models.fingerprint_encoder`.

    Args:
        max_atoms, max_degree, fingerprint_size: the row layout, as in the
            `fewshot.datasets.graph_features.GraphFeaturizer` that made the
            rows.
        units, depth, fingerprint_units, edge_features, pooling, norm: see
            `GraphIsomorphismNetwork`.
        embedding: width of the output (the embedding, or the logits).
        hidden: widths of Dense layers between the graph embedding and head.
        dropout: dropout rate before each Dense layer (0 disables it).
        name: model name.

    Returns:
        A built `keras.Sequential`.

    Example:

    >>> from fewshot.models import gin_encoder
    >>> gin_encoder(max_atoms=32, units=64, depth=2, embedding=2).output_shape
    (None, 2)
    """
    check_int("embedding", embedding, minimum=1)
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(
            "Invalid value received for argument `dropout`. Expected a float in "
            f"[0, 1). Received: dropout={dropout!r}"
        )
    gin = GraphIsomorphismNetwork(
        max_atoms, max_degree, units=units, depth=depth, fingerprint_size=fingerprint_size,
        fingerprint_units=fingerprint_units, edge_features=edge_features, pooling=pooling,
        norm=norm, name="gin",
    )
    layers = [keras.Input((gin.input_dim,)), gin]
    for i, width in enumerate(hidden):
        if dropout:
            layers.append(keras.layers.Dropout(float(dropout), name=f"dropout_{i + 1}"))
        layers.append(keras.layers.Dense(int(width), activation="relu", name=f"hidden_{i + 1}"))
    if dropout:
        layers.append(keras.layers.Dropout(float(dropout), name="dropout_head"))
    layers.append(keras.layers.Dense(embedding, name="head"))
    return keras.Sequential(layers, name=name)
