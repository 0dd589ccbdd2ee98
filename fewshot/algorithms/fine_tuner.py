"""The transfer-learning baseline: pretrain an encoder, fine-tune it per task."""

import keras
import numpy as np
import tensorflow as tf

from fewshot.algorithms.inner_loop import advance_seeds, functional_forward
from fewshot.algorithms.maml import batch_norm_layers, clone_backbone, zero_momentum
from fewshot.algorithms.meta_learner import MetaLearner, _seed_positions
from fewshot.algorithms.metric_heads import class_prototypes, pairwise_distance
from fewshot.algorithms.metric_learner import _EncoderMixin, check_class_labels, embed_episodes
from fewshot.episodes.episode import QUERY_X, SUPPORT_X, SUPPORT_Y
from fewshot.validation import check_int, check_positive_float

HEAD_INITS = ("prototypes", "prior")


@keras.saving.register_keras_serializable(package="fewshot")
class FineTuner(_EncoderMixin, MetaLearner):
    """A pretrained encoder with a prototype-initialised head, fine-tuned per task.

    The non-meta-learned baseline of the few-shot literature (Chen et al.
    2019; FS-Mol's multitask baseline): an encoder pretrained on every
    training task at once (see `pretrain_multitask`), then, for a new task, a
    linear head initialised from the support prototypes (``w_c = 2 c``,
    ``b_c = -|c|^2``, so before any step it classifies exactly like a
    prototypical network with squared Euclidean distance) and ``steps`` Adam
    steps on the support set's cross-entropy, updating the encoder and the
    head. With ``steps=0`` it is a prototype classifier on pretrained
    features.

    With ``head_init="prior"`` (binary tasks only) the head starts instead
    from the *prior head*, a linear "active" logit on the embedding that
    `pretrain_multitask` sets to the mean of the pretraining tasks' heads:
    before any step it ranks molecules by how active they were across the
    pretraining assays, and fine-tuning moves it towards the new assay.

    The fine-tuning steps run the encoder in training mode: dropout is on
    (a new mask each step) and BatchNorm normalises with the support's batch
    statistics. The classifier normalises the same way, as `fewshot.MAML`'s
    adapted model does with ``batch_norm="transductive"``: the prototypes
    the head starts from are the support's embeddings normalised with its
    own statistics, and the fine-tuned encoder's BatchNormalization layers
    carry the support's statistics under the fine-tuned weights (taken in
    one training-mode pass, dropout included), so a query is normalised as
    the support was during fine-tuning, whatever else shares its batch. The
    learner's own moving statistics (set by pretraining) are left as they
    are, and `evaluate` on episodes, like `fewshot.PrototypicalNetwork`,
    uses them. An encoder without BatchNorm (the recipes') is unaffected.

    Args:
        encoder: a built Keras model mapping inputs to embeddings.
        finetune_steps: Adam steps on the support set in `adapt`. Default 10.
        learning_rate: Adam step size of fine-tuning. Default 1e-4.
        head_init: ``"prototypes"`` or ``"prior"``. Default "prototypes".
        **kwargs: passed to `keras.Model`.

    Example:

    >>> import numpy as np, keras, fewshot
    >>> from fewshot.algorithms.fine_tuner import FineTuner
    >>> encoder = fewshot.models.mlp(input_shape=(4,), hidden=(16,), outputs=8)
    >>> tuner = FineTuner(encoder, finetune_steps=3)
    >>> tuner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> x = np.random.rand(6, 4).astype("float32")
    >>> tuner.adapt(x, [0, 0, 0, 1, 1, 1]).predict(x, verbose=0).shape
    (6, 2)

    Reference:
        Chen et al., "A Closer Look at Few-shot Classification", ICLR 2019;
        Stanley et al., "FS-Mol: A Few-Shot Learning Dataset of Molecules",
        NeurIPS 2021 (datasets and benchmarks).
    """

    _traced_settings = ("finetune_steps", "learning_rate", "head_init")

    def __init__(self, encoder, finetune_steps=10, learning_rate=1e-4, head_init="prototypes", **kwargs):
        super().__init__(encoder, **kwargs)
        if head_init not in HEAD_INITS:
            raise ValueError(
                "Invalid value received for argument `head_init`. Expected one of "
                f"{list(HEAD_INITS)}. Received: head_init={head_init!r}"
            )
        check_positive_float("learning_rate", learning_rate)
        self.finetune_steps = check_int("finetune_steps", finetune_steps)
        self.learning_rate = float(learning_rate)
        self.head_init = head_init
        width = int(np.prod(encoder.output_shape[1:]))
        self.prior_head = keras.layers.Dense(1, kernel_initializer="zeros", name="prior_head")
        self.prior_head.build((None, width))
        self._forward_fn = None

    def get_config(self):
        config = super().get_config()  # the encoder under "encoder" (_EncoderMixin)
        config.update(
            {
                "finetune_steps": self.finetune_steps,
                "learning_rate": self.learning_rate,
                "head_init": self.head_init,
            }
        )
        return config

    def query_predictions(self, episodes, training=False):
        """Prototype logits (the head before fine-tuning) of each task's queries.

        As `fewshot.PrototypicalNetwork`'s: at evaluation a BatchNorm encoder
        uses its moving statistics, not the support's that `adapt` uses.
        """
        support_z, query_z = embed_episodes(
            self.backbone, episodes[SUPPORT_X], episodes[QUERY_X], training
        )
        labels = tf.cast(episodes[SUPPORT_Y], tf.int32)
        prototypes = class_prototypes(support_z, labels, tf.reduce_max(labels) + 1)
        return -pairwise_distance(query_z, prototypes, "euclidean")

    def adapt(self, support_x, support_y, steps=None):
        """A classifier for one task: encoder copy + linear head, fine-tuned.

        Args:
            support_x: ``[S, ...]`` support inputs of one task.
            support_y: ``[S]`` integer labels ``0..N-1``.
            steps: Adam steps; default `finetune_steps`.

        Returns:
            A `keras.Model` mapping inputs to ``[batch, N]`` logits, in the
            encoder's dtype. Its BatchNormalization layers hold the support's
            statistics under the fine-tuned weights (see the class
            docstring); its predictions are `predict_task`'s.
        """
        params, kernel, bias, state = self._finetuned_weights(support_x, support_y, steps)
        encoder = clone_backbone(self.backbone, params)
        for i in _moving_statistics_positions(self.backbone):
            encoder.non_trainable_variables[i].assign(state[i])
        dtype = kernel.dtype.name  # the encoder's: float64 for a float64 encoder
        head = keras.layers.Dense(int(kernel.shape[-1]), dtype=dtype, name="finetuned_head")
        inputs = keras.Input(encoder.input_shape[1:], dtype=encoder.inputs[0].dtype)
        features = keras.layers.Flatten(dtype=dtype)(encoder(inputs))
        model = keras.Model(inputs, head(features), name="finetuned_classifier")
        head.set_weights([kernel.numpy(), bias.numpy()])
        if self.task_loss is not None:
            model.compile(loss=self.task_loss)
        return model

    def predict_task(self, support_x, support_y, query_x, steps=None, batch_size=None):
        """Logits of one task's queries after fine-tuning on its support.

        The same numbers as ``adapt(support_x, support_y).predict(query_x)``
        (the same fine-tuning), but the encoder copy never becomes a Keras
        model: the fine-tuned weights go straight into one compiled forward
        pass, traced once for every task. Scoring one Tox21 draw with the GIN
        fine-tuner (`benchmarks/scoring.py`) is 1.7 times faster than building
        and calling the adapted model in slices of 2048, 2.2 times with
        ``batch_size=512``.

        Args:
            support_x: ``[S, ...]`` support inputs of one task.
            support_y: ``[S]`` integer labels ``0..N-1``.
            query_x: ``[Q, ...]`` query inputs of the same task.
            steps: Adam steps; default `finetune_steps`.
            batch_size: queries per forward pass; default
                `query_batch_size` (512 for a GIN encoder, else 2048).

        Returns:
            A NumPy array ``[Q, N]`` of logits.

        Example:

        >>> import numpy as np, keras, fewshot
        >>> from fewshot.algorithms.fine_tuner import FineTuner
        >>> encoder = fewshot.models.mlp(input_shape=(4,), hidden=(16,), outputs=8)
        >>> tuner = FineTuner(encoder, finetune_steps=3)
        >>> x = np.random.rand(6, 4).astype("float32")
        >>> tuner.predict_task(x, [0, 0, 0, 1, 1, 1], x).shape
        (6, 2)
        """
        if batch_size is not None:
            check_int("batch_size", batch_size, minimum=1)
        qx = self._check_query(query_x)
        params, kernel, bias, state = self._finetuned_weights(support_x, support_y, steps)
        if self._forward_fn is None:
            self._forward_fn = tf.function(self._head_logits, reduce_retracing=True)
        return self._in_query_slices(lambda x: self._forward_fn(params, state, kernel, bias, x),
                                     qx, batch_size)

    def _head_logits(self, params, state, kernel, bias, x):
        """The fine-tuned classifier's logits: encoder in inference mode on `state`."""
        z = functional_forward(self.backbone, params, state, x, False)
        return tf.matmul(tf.reshape(z, [tf.shape(z)[0], -1]), kernel) + bias

    def _support_state(self, params, x):
        """The encoder's non-trainable values, BatchNorm moving statistics set to `x`'s.

        The batch statistics of `x` under weights `params` (one training-mode
        stateless pass, each layer's momentum at zero while it is traced), so
        an inference-mode pass on this state normalises as fine-tuning did.
        Without BatchNormalization layers, the current values unchanged.
        """
        fixed = [tf.convert_to_tensor(v) for v in self.backbone.non_trainable_variables]
        positions = _moving_statistics_positions(self.backbone)
        if not positions:
            return fixed
        with zero_momentum(batch_norm_layers(self.backbone)):
            _, updated = self.backbone.stateless_call(params, fixed, x, training=True)
        return [updated[i] if i in positions else v for i, v in enumerate(fixed)]

    def _finetuned_weights(self, support_x, support_y, steps):
        """Validates one task's support; returns the fine-tuned (params, kernel, bias, state)."""
        steps = check_int("steps", self.finetune_steps if steps is None else steps)
        sx, sy = self._check_support(support_x, support_y)
        labels = check_class_labels(sy)
        num_classes = int(labels.numpy().max()) + 1
        if self.head_init == "prior" and num_classes != 2:
            raise ValueError(
                "With head_init='prior' the task must be binary (labels 0 and 1). "
                f"Received: labels {list(range(num_classes))}"
            )
        fns = self._traced_cache("adapt")
        if steps not in fns:
            fns[steps] = tf.function(
                lambda x, y, n: self._finetune(x, y, n, steps), reduce_retracing=True
            )
        return fns[steps](sx, labels, tf.constant(num_classes))

    def task_predictions(self, support_x, support_y, query_x, steps=None):
        """Logits of one task's queries after fine-tuning, in graph mode.

        The graph twin of ``adapt(support_x, support_y).predict(query_x)``;
        `fewshot.export_saved_model` uses it for ``adapt_and_predict``.
        """
        steps = self.finetune_steps if steps is None else steps
        labels = tf.cast(support_y, tf.int32)
        params, kernel, bias, state = self._finetune(
            support_x, labels, tf.reduce_max(labels) + 1, steps
        )
        return self._head_logits(params, state, kernel, bias, query_x)

    def _finetune(self, x, y, num_classes, steps):
        params = [tf.convert_to_tensor(v) for v in self.backbone.trainable_variables]
        fixed = [tf.convert_to_tensor(v) for v in self.backbone.non_trainable_variables]
        seeds = _seed_positions(self.backbone)

        def embed(p, step):
            # Dropout draws a new mask at every fine-tuning step (the same
            # sequence for every task, so adapting is deterministic).
            state = advance_seeds(fixed, seeds, step)
            z = functional_forward(self.backbone, p, state, x, True)
            return tf.reshape(z, [tf.shape(z)[0], -1])

        if self.head_init == "prior":
            w, b = (tf.convert_to_tensor(v) for v in self.prior_head.weights)
            kernel = tf.concat([tf.zeros_like(w), w], axis=1)
            bias = tf.concat([tf.zeros_like(b), b], axis=0)
        else:
            # The support normalised with its own statistics, as in fine-tuning.
            state = self._support_state(params, x)
            z = tf.reshape(functional_forward(self.backbone, params, state, x, False),
                           [tf.shape(x)[0], -1])
            prototypes = class_prototypes(z, y, num_classes)  # [N, D]
            kernel = tf.transpose(2.0 * prototypes)
            bias = -tf.reduce_sum(tf.square(prototypes), -1)
        weights = params + [kernel, bias]
        m = [tf.zeros_like(w) for w in weights]
        v = [tf.zeros_like(w) for w in weights]
        b1, b2, eps, lr = 0.9, 0.999, 1e-7, self.learning_rate
        # A graph loop (not unrolled), so tracing cost does not grow with steps;
        # written as tf.while_loop so it also traces without AutoGraph (export).
        def body(step, weights, m, v):
            with tf.GradientTape() as tape:
                tape.watch(weights)
                logits = tf.matmul(embed(weights[:-2], step), weights[-2]) + weights[-1]
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
                )
            grads = tape.gradient(loss, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            m = [b1 * a + (1 - b1) * g for a, g in zip(m, grads)]
            v = [b2 * a + (1 - b2) * tf.square(g) for a, g in zip(v, grads)]
            t = tf.cast(step, weights[0].dtype)  # float64 for a float64 encoder
            scale = lr * tf.sqrt(1 - b2**t) / (1 - b1**t)
            weights = [w - scale * a / (tf.sqrt(b) + eps) for w, a, b in zip(weights, m, v)]
            return step + 1, weights, m, v

        _, weights, _, _ = tf.while_loop(
            lambda step, *_: step <= steps, body, (tf.constant(1), weights, m, v)
        )
        params = weights[:-2]
        return params, weights[-2], weights[-1], self._support_state(params, x)


def _moving_statistics_positions(model):
    """Where the BatchNorm moving means and variances sit in ``model.non_trainable_variables``."""
    moving = {id(v) for l in batch_norm_layers(model) for v in (l.moving_mean, l.moving_variance)}
    return [i for i, v in enumerate(model.non_trainable_variables) if id(v) in moving]


def pretrain_multitask(
    learner,
    features,
    labels,
    epochs=20,
    batch_size=128,
    learning_rate=1e-3,
    callbacks=None,
    verbose=0,
    seed=0,
):
    """Pretrains `encoder` on every task at once (masked binary cross-entropy).

    A linear layer with one logit per task sits on the embedding; missing
    labels (NaN) are masked out of the loss. The encoder's weights are
    trained in place.

    Args:
        learner: a `FineTuner` (its encoder is trained, and its prior head
            set to the mean of the task heads) or a plain encoder.
        features: ``[num_molecules, ...]``.
        labels: ``[num_molecules, num_tasks]`` of 1, 0 or NaN.
        epochs, batch_size, learning_rate: the training schedule (Adam).
        callbacks: Keras callbacks for `fit` (for example early stopping on
            a few-shot validation score).
        verbose: Keras verbosity.
        seed: shuffling seed.

    Returns:
        The Keras `History`.
    """
    labels = np.asarray(labels, dtype=np.float32)
    encoder = learner.backbone if isinstance(learner, FineTuner) else learner
    inputs = keras.Input(encoder.input_shape[1:])
    z = keras.layers.Flatten()(encoder(inputs))
    logits = keras.layers.Dense(labels.shape[1], name="task_logits")(z)
    model = keras.Model(inputs, logits, name="multitask")

    def masked_bce(y_true, y_pred):
        mask = tf.logical_not(tf.math.is_nan(y_true))
        y = tf.where(mask, y_true, 0.0)
        loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=y_pred)
        mask = tf.cast(mask, loss.dtype)
        return tf.reduce_sum(loss * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=masked_bce)
    dataset = (
        tf.data.Dataset.from_tensor_slices((np.asarray(features, np.float32), labels))
        .shuffle(len(labels), seed=seed)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    task_head = model.get_layer("task_logits")
    callbacks = list(callbacks or [])
    if isinstance(learner, FineTuner):
        callbacks.insert(0, _PriorSync(learner, task_head))
    return model.fit(dataset, epochs=epochs, callbacks=callbacks, verbose=verbose)


class _PriorSync(keras.callbacks.Callback):
    """Keeps a `FineTuner`'s prior head at the mean of the task heads."""

    def __init__(self, learner, task_head):
        super().__init__()
        self.learner = learner
        self.task_head = task_head

    def on_epoch_end(self, epoch, logs=None):
        kernel, bias = self.task_head.get_weights()
        self.learner.prior_head.set_weights(
            [kernel.mean(axis=1, keepdims=True), bias.mean(keepdims=True)]
        )
