"""Task retrieval: start a new task from the weights of the most similar known one."""

import keras
import tensorflow as tf

from fewshot.algorithms.inner_loop import functional_forward, gradient_steps
from fewshot.algorithms.maml import MAML, check_per_variable, clone_backbone, use_batch_statistics
from fewshot.algorithms.metric_heads import pairwise_distance
from fewshot.episodes.episode import QUERY_X, QUERY_Y, SUPPORT_X, SUPPORT_Y
from fewshot.validation import check_int, check_positive_float

SIMILARITIES = ("embedding", "support_loss")


@keras.saving.register_keras_serializable(package="fewshot")
class TaskRetrieval(MAML):
    """MAML with a memory of solved tasks: adapt from the nearest one.

    Meta-training is MAML's (the memory plays no part in it). On top, the
    learner keeps a memory of up to `memory_size` known tasks, each stored
    as a task embedding and the weights adapted to that task
    (`remember`). A new task is embedded the same way; adaptation (`adapt`,
    and `evaluate`/`predict` on episodes) starts from the weights of the
    most similar remembered task instead of the meta-initialisation, then
    takes the usual inner steps. With an empty memory it is exactly MAML.

    The task embedding is the covariance of features and targets over the
    support set, ``mean_s (h(x_s) - mean h) (y_s - mean y)^T`` flattened,
    where ``h`` is the backbone's penultimate layer under the meta-weights
    and ``y`` the targets (one-hot for class labels): the statistics a
    linear head on ``h`` would be fitted from, so tasks that map the same
    inputs to the same targets land close together. ``h`` sees BatchNorm as
    the inner loop does: with ``batch_norm="transductive"`` each task's
    support is normalised with its own batch statistics (the moving ones are
    never updated by meta-training in that mode), by a stateless call that
    leaves the moving statistics as they are. Similarity is minus the
    Euclidean distance of embeddings (``similarity="embedding"``), or
    ``"support_loss"``: the remembered weights that fit the new support set
    best (one forward pass per memory entry). Keys depend on the
    meta-weights: call `forget` after further meta-training.

    It pays off when tasks recur with small changes (a user, a machine, an
    assay seen before): with a few support examples, starting from a nearby
    solution beats starting from the meta-initialisation. On tasks unlike
    every remembered one it can do worse than MAML, since it starts far off.

    The memory is a set of non-trainable weights, saved with the model.

    Args:
        backbone: a built Keras model whose second-to-last layer gives the
            features used for task embeddings (a Sequential or functional
            model).
        memory_size: how many tasks the memory holds; older entries are
            overwritten first. Default 64.
        similarity: ``"support_loss"`` or ``"embedding"``. Default
            "support_loss", the more reliable of the two on few support
            examples (see `benchmarks/task_retrieval.py`).
        inner_lr, inner_steps, first_order, adapt_layers, vectorize,
            batch_norm: as in `fewshot.MAML`.
        **kwargs: passed to `keras.Model`.

    Example:

    >>> import keras, fewshot
    >>> backbone = fewshot.models.mlp(input_shape=(1,), hidden=(40, 40), outputs=1)
    >>> learner = fewshot.TaskRetrieval(backbone, memory_size=8, inner_lr=0.01)
    >>> learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    >>> task = fewshot.episodes.Sinusoid(support_shots=20).sample(num_tasks=1, seed=0)
    >>> learner.remember(task["support_x"][0], task["support_y"][0], steps=20)
    0
    >>> adapted = learner.adapt(task["support_x"][0, :5], task["support_y"][0, :5], steps=1)
    >>> adapted.retrieved_index
    0

    Reference:
        The seed of this project (metric-based task retrieval); related:
        Santoro et al., "Meta-Learning with Memory-Augmented Neural
        Networks", ICML 2016, and Finn et al. 2017 for the inner loop.
    """

    _traced_settings = MAML._traced_settings + ("similarity",)

    def __init__(self, backbone, memory_size=64, similarity="support_loss", **kwargs):
        super().__init__(backbone, **kwargs)
        memory_size = check_int("memory_size", memory_size, minimum=1)
        layers = getattr(backbone, "layers", [])
        if len(layers) < 2:
            raise ValueError(
                "Invalid value received for argument `backbone`: task "
                "embeddings use its second-to-last layer, so it needs at least "
                f"two layers. Received: backbone={backbone.name!r} with {len(layers)} layers"
            )
        self.memory_size = memory_size
        self.similarity = similarity  # validated by `_check_setting`
        # Shares the backbone's variables; held untracked so they are not
        # counted twice among the learner's weights.
        self._features = _Untracked(keras.Model(backbone.inputs, layers[-2].output))
        feature_dim = int(tf.reduce_prod(layers[-2].output.shape[1:]))
        self._num_outputs = int(tf.reduce_prod(backbone.output_shape[1:]))
        key_dim = feature_dim * self._num_outputs
        self.memory_keys = self.add_weight(
            shape=(memory_size, key_dim),
            initializer="zeros",
            dtype=self._input_dtype(),
            trainable=False,
            name="memory_keys",
        )
        # The variables the memory's weights belong to, by position (untracked).
        self.__dict__["_memory_variables"] = list(self.backbone.trainable_variables)
        self.memory_weights = [
            self.add_weight(
                shape=(memory_size,) + tuple(v.shape),
                initializer="zeros",
                dtype=v.dtype,
                trainable=False,
                name=f"memory_{i}",
            )
            for i, v in enumerate(self.backbone.trainable_variables)
        ]
        self.memory_count = self.add_weight(
            shape=(), initializer="zeros", dtype="int64", trainable=False, name="memory_count"
        )

    def _check_setting(self, name, value):
        if name == "similarity" and value not in SIMILARITIES:
            raise ValueError(
                "Invalid value received for argument `similarity`. Expected one "
                f"of {list(SIMILARITIES)}. Received: similarity={value!r}"
            )
        return super()._check_setting(name, value)

    def get_config(self):
        config = super().get_config()
        config.update({"memory_size": self.memory_size, "similarity": self.similarity})
        return config

    # ------------------------------------------------------------ embedding
    def task_embedding(self, support_x, support_y):
        """Embeddings ``[T, key_dim]`` of a batch of tasks ``[T, S, ...]``."""
        shape = tf.shape(support_x)
        if self.vectorize:
            h = tf.vectorized_map(self._task_features, support_x)
        else:
            h = tf.map_fn(
                self._task_features, support_x, fn_output_signature=self.backbone.compute_dtype
            )
        y = support_y
        if y.dtype.is_integer:
            y = tf.one_hot(tf.cast(y, tf.int32), self._num_outputs, dtype=h.dtype)
        y = tf.reshape(tf.cast(y, h.dtype), [shape[0], shape[1], -1])
        s = tf.cast(shape[1], h.dtype)
        # The covariance of features and targets: the part shared by every
        # task (the mean feature, the mean target) drops out.
        h = h - tf.reduce_mean(h, axis=1, keepdims=True)
        y = y - tf.reduce_mean(y, axis=1, keepdims=True)
        cross = tf.einsum("tsh,tso->tho", h, y) / s
        return tf.reshape(cross, [shape[0], -1])

    def _task_features(self, x):
        """Features ``[S, F]`` of one task's inputs, BatchNorm as in the inner loop.

        A stateless call (`_forward`'s mode: the task's own batch statistics
        with ``batch_norm="transductive"``), so the moving statistics are not
        updated.
        """
        model = self._features.model
        h = functional_forward(
            model,
            [tf.convert_to_tensor(v) for v in model.trainable_variables],
            [tf.convert_to_tensor(v) for v in model.non_trainable_variables],
            x,
            self.batch_norm == "transductive",
        )
        return tf.reshape(h, [tf.shape(h)[0], -1])

    # --------------------------------------------------------------- memory
    @property
    def num_remembered(self):
        """How many tasks the memory holds now."""
        return int(min(int(self.memory_count.numpy()), self.memory_size))

    def remember(self, support_x, support_y, steps=None, weights=None, inner_lr=None):
        """Adds one task to the memory.

        Args:
            support_x: ``[S, ...]`` inputs of the task (no task axis).
            support_y: ``[S, ...]`` targets.
            steps: inner steps from the meta-initialisation that give the
                stored weights; default `inner_steps`. Ignored with `weights`.
            weights: optional list of arrays, the task's solution (one per
                backbone trainable variable), stored as given.
            inner_lr: step size of those steps; default the learner's.

        Returns:
            The memory slot used (an int).
        """
        sx, sy, steps, inner_lr = self._check_task(support_x, support_y, steps, inner_lr)
        if weights is None:
            weights = self._solve(sx, sy, steps, inner_lr)
        variables = self.backbone.trainable_variables
        if len(weights) != len(variables) or any(
            tuple(w.shape) != tuple(v.shape) for w, v in zip(weights, variables)
        ):
            raise ValueError(
                "Invalid value received for argument `weights`. Expected one "
                "array per backbone trainable variable with shapes "
                f"{[tuple(v.shape) for v in variables]}. Received: shapes "
                f"{[tuple(getattr(w, 'shape', ())) for w in weights]}"
            )
        slot = int(self.memory_count.numpy()) % self.memory_size
        key = self.task_embedding(sx[None], sy[None])[0]
        self.memory_keys[slot].assign(tf.cast(key, self.memory_keys.dtype))
        for memory, value in zip(self.memory_weights, weights):
            memory[slot].assign(tf.cast(value, memory.dtype))
        self.memory_count.assign_add(1)
        return slot

    def _check_task(self, support_x, support_y, steps, inner_lr):
        """`remember`'s and `adapt`'s checks; returns ``(sx, sy, steps, inner_lr)``."""
        self._require_compiled()
        steps = check_int("steps", self.inner_steps if steps is None else steps)
        if inner_lr is not None:
            inner_lr = float(check_positive_float("inner_lr", inner_lr))
        check_per_variable(self, self._memory_variables, "remembered weights")
        sx, sy = self._check_support(support_x, support_y)
        return sx, sy, steps, inner_lr

    def _solve(self, sx, sy, steps, inner_lr):
        """`steps` first-order steps from the meta-initialisation, one compiled step at a time."""
        lrs = self.inner_learning_rates() if inner_lr is None else [inner_lr] * len(self.backbone.trainable_variables)
        fns = self._traced_cache("solve_step")
        if "step" not in fns:

            def step(params, sx, sy, lrs):
                new, _ = self.adapt_parameters(list(params), sx, sy, 1, True, learning_rates=list(lrs))
                return new

            fns["step"] = tf.function(step, reduce_retracing=True)
        params = self.meta_parameters()
        lrs = [tf.cast(tf.convert_to_tensor(r), p.dtype) for r, p in zip(lrs, params)]
        for _ in range(steps):
            params = fns["step"](params, sx, sy, lrs)
        return params

    def forget(self):
        """Empties the memory."""
        self.memory_count.assign(0)

    def _retrieve(self, support_x, support_y):
        """Index ``[T]`` of the most similar remembered task (-1: none)."""
        used = tf.minimum(self.memory_count, self.memory_size)
        valid = tf.range(self.memory_size, dtype=tf.int64) < used
        check_per_variable(self, self._memory_variables, "remembered weights")
        if self.similarity == "embedding":
            keys = tf.convert_to_tensor(self.memory_keys)
            query = tf.cast(self.task_embedding(support_x, support_y), keys.dtype)
            scores = -pairwise_distance(query, keys, "euclidean")  # [T, M]
        else:
            memory = [tf.convert_to_tensor(m) for m in self.memory_weights]

            def task_scores(task):
                sx, sy = task

                def entry_loss(params):
                    # BatchNorm as in the inner loop: with batch_norm="transductive"
                    # the support's own statistics (the moving ones are never
                    # updated by meta-training in that mode).
                    return self.per_task_loss(sy, self._forward(list(params), sx))

                return -tf.vectorized_map(entry_loss, tuple(memory))

            scores = tf.map_fn(
                task_scores,
                (support_x, support_y),
                fn_output_signature=tf.TensorSpec([self.memory_size], memory[0].dtype),
            )
        scores = tf.where(valid[None], scores, tf.cast(-1e30, scores.dtype))
        best = tf.argmax(scores, axis=1)
        return tf.where(used > 0, best, tf.constant(-1, tf.int64))

    def _compiled_retrieve(self):
        """`_retrieve` as a tf.function, one per similarity (traced once)."""
        fns = self._traced_cache("retrieve")
        if self.similarity not in fns:
            fns[self.similarity] = tf.function(self._retrieve, reduce_retracing=True)
        return fns[self.similarity]

    def _start_parameters(self, index):
        """Per-task starting weights ``[T, ...]`` for retrieved indices."""
        check_per_variable(self, self._memory_variables, "remembered weights")
        theta = self.meta_parameters()
        out = []
        for t, memory in zip(theta, self.memory_weights):
            gathered = tf.gather(tf.convert_to_tensor(memory), tf.maximum(index, 0))
            tiled = tf.broadcast_to(t, tf.shape(gathered))
            mask = tf.reshape(index >= 0, [-1] + [1] * len(t.shape))
            out.append(tf.where(mask, gathered, tiled))
        return out

    # ----------------------------------------------------- episode batches
    def query_predictions(self, episodes, training=False, steps=None):
        if training:
            return super().query_predictions(episodes, training=True, steps=steps)
        # Retrieval embeds the whole support set: padded rows would count.
        self._refuse_support_weight(episodes, "when it retrieves")
        steps = self.inner_steps if steps is None else steps
        index = self._retrieve(episodes[SUPPORT_X], episodes[SUPPORT_Y])
        starts = self._start_parameters(index)
        tensors = [episodes[k] for k in (SUPPORT_X, SUPPORT_Y, QUERY_X, QUERY_Y)]

        def task_fn(args):
            sx, sy, qx, _ = args[:4]
            adapted, _ = self.adapt_parameters(list(args[4:]), sx, sy, steps, True)
            return self._forward(adapted, qx)

        if self.vectorize:
            return tf.vectorized_map(task_fn, tuple(tensors) + tuple(starts))
        return tf.map_fn(
            task_fn, tuple(tensors) + tuple(starts), fn_output_signature=self.backbone.compute_dtype
        )

    # ----------------------------------------------------------------- adapt
    def adapt(self, support_x, support_y, steps=None, inner_lr=None):
        """Adapts to one task, starting from the most similar remembered one.

        As `fewshot.MAML.adapt`; the returned model also has
        ``retrieved_index``, the memory slot it started from (-1 for the
        meta-initialisation, when the memory is empty).
        """
        sx, sy, steps, inner_lr = self._check_task(support_x, support_y, steps, inner_lr)
        index = self._compiled_retrieve()(sx[None], sy[None])
        start = [s[0] for s in self._start_parameters(index)]
        lrs = self.inner_learning_rates() if inner_lr is None else [inner_lr] * len(start)

        def support_loss(p):
            return self.support_loss(sy, self._forward(p, sx))

        params, losses = gradient_steps(
            support_loss, start, steps, lrs, first_order=True, mask=self._adapt_mask
        )
        final = support_loss(params)
        adapted = clone_backbone(self.backbone, params)
        if self.batch_norm == "transductive":
            use_batch_statistics(adapted, sx)
        adapted.adaptation_loss = [float(v) for v in losses] + [float(final)]
        adapted.retrieved_index = int(index[0])
        adapted.compile(loss=self.task_loss)
        return adapted


class _Untracked:
    """Holds a model without Keras tracking it as a sublayer."""

    def __init__(self, model):
        self.model = model
