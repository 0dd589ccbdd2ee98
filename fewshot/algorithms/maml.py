"""Model-Agnostic Meta-Learning, first- and second-order, and ANIL."""

import contextlib
import math
import numbers
import warnings

import keras
import tensorflow as tf

from fewshot.algorithms.inner_loop import functional_forward, gradient_steps, split_at_adapted
from fewshot.algorithms.meta_learner import MetaLearner, _all_layers, _random_layers
from fewshot.episodes.episode import QUERY_X, QUERY_Y, SUPPORT_WEIGHT, SUPPORT_X, SUPPORT_Y
from fewshot.validation import check_bool, check_int, check_positive_float


BATCH_NORM_MODES = ("transductive", "running")


@keras.saving.register_keras_serializable(package="fewshot")
class MAML(MetaLearner):
    """Model-Agnostic Meta-Learning (MAML) around any Keras backbone.

    Learns an initialisation from which a few gradient steps on a task's
    support set give a good model for that task. Each meta-update adapts a
    copy of the weights to every task of the batch (the *inner loop*, on
    explicit fast weights, never assigning to variables), scores the adapted
    weights on the task's query set, and updates the initialisation with the
    gradient of the mean query loss. That gradient flows back through the
    inner updates (true second order, nested `tf.GradientTape`s) unless
    ``first_order=True`` (FOMAML), which drops the second-derivative terms.
    With ``adapt_layers`` only the named layers adapt in the inner loop
    (ANIL adapts only the head); every layer is still meta-learned.

    Batch normalisation during adaptation is a stated choice, ``batch_norm``:
    ``"transductive"`` (the default, as the numbers in the MAML paper assume)
    normalises with the statistics of the batch at hand: the backbone runs
    with ``training=True`` in the inner loop and on the query set, so a query
    prediction depends on the other queries of its task, and the moving
    averages are not updated by meta-training. ``"running"`` runs the
    backbone with ``training=False`` during adaptation and on the query set
    (each prediction depends on its own example only), and each meta-update
    refreshes the moving averages from the batch's support inputs. With
    second order and transductive statistics, build the backbone with
    `fewshot.models.BatchNormalization` (as `fewshot.models.conv4` does):
    `keras.layers.BatchNormalization` stops the gradient through the batch
    mean inside its variance, which leaves the first derivative exact but
    not the second (a 3% meta-gradient error on a small conv backbone in
    tests/models/test_batch_norm.py).

    Support sets of different sizes can share a batch: pad them to one width
    and add ``support_weight`` ``[T, S]`` to the episode (1 for a real
    example, 0 for padding). The inner loop then minimises the weighted mean
    support loss, so padded rows change nothing and a task's support loss is
    the mean over its real examples, as when it is adapted alone (`adapt`).
    Padded rows still pass through the backbone, so with
    ``batch_norm="transductive"`` they would enter the batch statistics:
    use padding with backbones without batch normalisation.

    The inner loss is a mean over the support set, so a support of one
    example gets as large a step as one of a hundred. ``support_shrinkage=c`` divides the summed
    support loss by ``n + c`` instead of ``n`` (``n`` real examples, or the
    sum of ``support_weight``): the step on a support of ``n`` examples is
    scaled by ``n / (n + c)``, so tiny supports move the weights little, as
    the bias baseline shrinks a user's mean rating towards the prior
    (``sum / (n + c)``). ``c = 0`` (the default) is the plain mean. Only
    the inner loop's support loss changes; the query loss stays a mean.
    With ``learn_support_shrinkage=True`` ``c`` is meta-learned too (as
    ``log c``, starting from `support_shrinkage`); it gets a gradient only
    through the inner gradients, so it needs second order.

    Tasks in a batch run as one vectorised computation (`tf.vectorized_map`)
    unless ``vectorize=False``, which unrolls a Python loop over the tasks
    (the task count must then be static).

    Memory of second-order MAML grows with `inner_steps`: the outer
    gradient needs every inner step's activations and inner gradients.
    ``recompute_inner=True`` checkpoints the inner loop (`tf.recompute_grad`
    around each step): only each step's fast weights are kept and the step is
    recomputed during the backward pass. The gradient is the same; the
    compute is higher. Measured on Conv4 (benchmarks/README.md) it did not
    lower the peak with the default ``vectorize=True``; ``first_order=True``
    is the option that flattens memory in the number of inner steps, and
    ``tasks_per_chunk`` bounds it in the number of tasks (the meta-gradient
    is accumulated chunk by chunk, as learn2learn's per-task backward does).
    On a CPU, the fastest Conv4 setting measured is ``vectorize=False,
    tasks_per_chunk=2`` with `fewshot.threads.set_task_parallel_threads()`
    at the top of the script: the chunk's two tasks run side by side, one
    op per core (benchmarks/README.md).

    Args:
        backbone: a built Keras model.
        inner_lr: step size of the inner loop. Default 0.01.
        inner_steps: gradient steps on the support set. Default 1.
        first_order: ignore second-order terms (FOMAML). Default False.
        adapt_layers: names of the backbone layers adapted in the inner loop;
            ``None`` adapts all of them (their trainable weights at the time
            of each call, so a layer frozen later stays fixed). Default None.
        vectorize: run the tasks of a batch with `tf.vectorized_map`.
        batch_norm: ``"transductive"`` (batch statistics during adaptation)
            or ``"running"`` (moving statistics). Default "transductive".
        recompute_inner: recompute each inner step in the backward pass
            instead of storing it (gradient checkpointing). Default False.
        tasks_per_chunk: accumulate the meta-gradient over chunks of this
            many tasks, one chunk at a time, instead of differentiating the
            whole meta-batch at once: the same update, with the peak memory
            of one chunk. Tasks left over when a batch is not a multiple of
            it (a partial last batch) are taken one at a time. None (the
            default) takes the whole batch at once.
        support_shrinkage: ``c >= 0``: the inner loop's support loss is
            ``sum(w * loss) / (sum(w) + c)`` (`per_task_loss`). Default 0.0
            (the mean).
        learn_support_shrinkage: meta-learn ``c`` (as ``log c``, from
            `support_shrinkage`, which must then be positive; second order
            only). Default False.
        **kwargs: passed to `keras.Model`.

    Example:

    >>> import keras, fewshot
    >>> backbone = fewshot.models.mlp(input_shape=(1,), hidden=(40, 40), outputs=1)
    >>> maml = fewshot.MAML(backbone, inner_lr=0.01, inner_steps=1)
    >>> maml.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    >>> stream = fewshot.episodes.Sinusoid().stream(meta_batch_size=4, batches_per_epoch=2)
    >>> history = maml.fit(stream, epochs=1, verbose=0)
    >>> task = fewshot.episodes.Sinusoid().sample(num_tasks=1, seed=1)
    >>> adapted = maml.adapt(task["support_x"][0], task["support_y"][0])
    >>> adapted.predict(task["query_x"][0], verbose=0).shape
    (10, 1)

    Reference:
        Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast
        Adaptation of Deep Networks", ICML 2017. ANIL: Raghu et al., "Rapid
        Learning or Feature Reuse?", ICLR 2020.
    """

    _uses_support_weight = True

    _traced_settings = (
        "inner_lr", "inner_steps", "first_order", "batch_norm", "vectorize",
        "recompute_inner", "tasks_per_chunk", "support_shrinkage", "adapt_layers",
    )

    def __init__(
        self,
        backbone,
        inner_lr=0.01,
        inner_steps=1,
        first_order=False,
        adapt_layers=None,
        vectorize=True,
        batch_norm="transductive",
        recompute_inner=False,
        tasks_per_chunk=None,
        support_shrinkage=0.0,
        learn_support_shrinkage=False,
        **kwargs,
    ):
        super().__init__(backbone, **kwargs)
        random = [layer.name for layer in _random_layers(self.backbone)]
        if random:
            # The inner loop calls the backbone statelessly with the same seed
            # state every time, and in transductive mode in training mode even
            # at evaluation: dropout would be one fixed mask, also at test time.
            raise ValueError(
                f"{type(self).__name__} cannot adapt a backbone with random layers "
                f"({', '.join(random)}): its inner loop would apply one fixed dropout "
                "or noise mask at every step and at evaluation. Remove them (or set "
                f"their rate to 0). Received: backbone={self.backbone.name!r}"
            )
        if batch_norm not in BATCH_NORM_MODES:
            raise ValueError(
                "Invalid value received for argument `batch_norm`. Expected "
                f"one of {list(BATCH_NORM_MODES)}. Received: batch_norm={batch_norm!r}"
            )
        check_positive_float("inner_lr", inner_lr)
        self.inner_lr = float(inner_lr)
        self.inner_steps = check_int("inner_steps", inner_steps)
        self.first_order = check_bool("first_order", first_order)
        self.adapt_layers = adapt_layers  # validated by `_check_setting`
        self.vectorize = check_bool("vectorize", vectorize)
        self.batch_norm = batch_norm
        self.recompute_inner = check_bool("recompute_inner", recompute_inner)
        if tasks_per_chunk is not None:
            tasks_per_chunk = check_int("tasks_per_chunk", tasks_per_chunk, minimum=1)
        self.tasks_per_chunk = tasks_per_chunk
        if (
            isinstance(support_shrinkage, bool)
            or not isinstance(support_shrinkage, numbers.Real)
            or not 0 <= support_shrinkage < math.inf
        ):
            raise ValueError(
                "Invalid value received for argument `support_shrinkage`. Expected "
                f"a non-negative float. Received: support_shrinkage={support_shrinkage!r}"
            )
        learn_support_shrinkage = check_bool("learn_support_shrinkage", learn_support_shrinkage)
        if learn_support_shrinkage and not (support_shrinkage > 0 and not self.first_order):
            raise ValueError(
                "A meta-learned `support_shrinkage` needs a positive starting value "
                "(it is learned as its logarithm) and second order (`first_order=False`: "
                "it gets its gradient through the inner gradients). Received: "
                f"support_shrinkage={support_shrinkage!r}, first_order={self.first_order}"
            )
        self.support_shrinkage = float(support_shrinkage)
        self.learn_support_shrinkage = learn_support_shrinkage
        if learn_support_shrinkage:
            self.log_support_shrinkage = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(math.log(self.support_shrinkage)),
                dtype=self.backbone.trainable_variables[0].dtype,
                trainable=True,
                name="log_support_shrinkage",
            )
        self._warn_inexact_batch_norm()

    def _warn_inexact_batch_norm(self):
        if self.first_order or self.batch_norm != "transductive":
            return
        names = [l.name for l in _all_layers(self.backbone) if _keras_batch_moments(l)]
        if names:
            warnings.warn(
                f"Second-order MAML through keras.layers.BatchNormalization ({', '.join(names)}) "
                "gets an inexact meta-gradient: Keras' batch variance stops the gradient through "
                "the batch mean, so its second derivative is off. Build the backbone with "
                "fewshot.models.BatchNormalization (same arguments and weights) for the exact one.",
                stacklevel=3,
            )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "inner_lr": self.inner_lr,
                "inner_steps": self.inner_steps,
                "first_order": self.first_order,
                "adapt_layers": self.adapt_layers,
                "vectorize": self.vectorize,
                "batch_norm": self.batch_norm,
                "recompute_inner": self.recompute_inner,
                "tasks_per_chunk": self.tasks_per_chunk,
                "support_shrinkage": self.support_shrinkage,
                "learn_support_shrinkage": self.learn_support_shrinkage,
            }
        )
        return config

    def _check_setting(self, name, value):
        if name == "adapt_layers" and value is not None:
            if isinstance(value, str) or not hasattr(value, "__iter__"):
                raise ValueError(
                    "Invalid value received for argument `adapt_layers`. Expected a "
                    f"list of layer names or None. Received: adapt_layers={value!r}"
                )
            value = list(value)
            self._build_mask(value)  # raises on an unknown or weightless layer
        return value

    # ---------------------------------------------------------- inner loop
    @property
    def _adapt_mask(self):
        """Which backbone trainable variables the inner loop adapts, by position.

        Computed from the current trainable variables whenever a function is
        traced, so it follows layers frozen or unfrozen after construction.
        """
        return self._build_mask(self.adapt_layers)

    def _build_mask(self, adapt_layers):
        variables = self.backbone.trainable_variables
        if adapt_layers is None:
            return [True] * len(variables)
        names = [layer.name for layer in _all_layers(self.backbone)]
        chosen = set()
        for name in adapt_layers:
            if name not in names:
                raise ValueError(
                    "Invalid value received for argument `adapt_layers`: the "
                    f"backbone has no layer named {name!r}. Its layers: "
                    f"{names}. Received: adapt_layers={adapt_layers!r}"
                )
            layer = next(l for l in _all_layers(self.backbone) if l.name == name)
            chosen.update(id(v) for v in layer.trainable_variables)
        if not chosen:
            raise ValueError(
                "Invalid value received for argument `adapt_layers`: the named "
                f"layers hold no trainable weights. Received: adapt_layers={adapt_layers!r}"
            )
        return [id(v) in chosen for v in variables]

    def inner_learning_rates(self):
        """One learning rate per backbone trainable variable."""
        return [self.inner_lr] * len(self.backbone.trainable_variables)

    def inner_support_shrinkage(self):
        """The ``c`` of the inner loop's support loss: a float, or a tensor if learned."""
        if self.learn_support_shrinkage:
            return tf.exp(tf.convert_to_tensor(self.log_support_shrinkage))
        return self.support_shrinkage

    def support_loss(self, support_y, support_pred, support_weight=None):
        """The inner loop's loss on one task's support set (with `support_shrinkage`)."""
        return self.per_task_loss(
            support_y, support_pred, support_weight, shrinkage=self.inner_support_shrinkage()
        )

    def meta_parameters(self):
        """The meta-learned initial weights, as tensors."""
        return [tf.convert_to_tensor(v) for v in self.backbone.trainable_variables]

    def _non_trainable(self):
        return [tf.convert_to_tensor(v) for v in self.backbone.non_trainable_variables]

    def _forward(self, params, x, training=True):
        # `training` only switches batch statistics on in transductive mode.
        training = bool(training) and self.batch_norm == "transductive"
        return functional_forward(self.backbone, params, self._non_trainable(), x, training)

    def _inner_forward(self, params, x):
        """The inner loop's forward pass, and the input it takes, for inputs `x`.

        When the first layers of a `keras.Sequential` backbone hold no adapted
        weight (ANIL's body), their output is the same at every inner step:
        it is computed here once, from `params`, and each step runs only the
        layers after them. The outer gradient still reaches the body through
        those features, so the update is unchanged. Otherwise (and under
        `recompute_inner`, whose checkpointed steps differentiate only their
        explicit inputs) every step runs the whole backbone.

        Returns:
            ``(forward, inputs)``: ``forward(params, inputs)`` is the
            backbone's output on `x`.
        """
        split = None if self.recompute_inner else split_at_adapted(self.backbone, self._adapt_mask)
        if split is None:
            return self._forward, x
        body, head = split
        training = self.batch_norm == "transductive"
        fixed = self._non_trainable()
        features = body(params, fixed, x, training)
        return (lambda p, h: head(p, fixed, h, training)), features

    def train_step(self, data):
        logs = super().train_step(data)
        if self.batch_norm == "running" and self.backbone.non_trainable_variables:
            # Refresh the moving statistics from this batch's support inputs.
            support_x = self._unpack(data)[SUPPORT_X]
            flat = tf.reshape(support_x, tf.concat([[-1], tf.shape(support_x)[2:]], 0))
            self.backbone(flat, training=True)
        return logs

    def adapt_parameters(
        self, params, support_x, support_y, steps, first_order, learning_rates=None,
        support_weight=None,
    ):
        """Adapts fast weights `params` to one task's support set.

        Args:
            support_weight: optional ``[S]`` weights of the support examples
                (0 for padding); see `per_task_loss`.

        Returns:
            ``(adapted_params, support_losses)``.
        """
        lrs = self.inner_learning_rates() if learning_rates is None else learning_rates
        forward, inputs = self._inner_forward(params, support_x)

        def support_loss(p):
            return self.support_loss(support_y, forward(p, inputs), support_weight)

        return gradient_steps(
            support_loss,
            params,
            steps,
            lrs,
            first_order=first_order,
            mask=self._adapt_mask,
            recompute=self.recompute_inner,
        )

    def _unpack(self, data):
        episodes = super()._unpack(data)
        raw = data[0] if isinstance(data, (tuple, list)) else data
        if SUPPORT_WEIGHT in raw:
            episodes[SUPPORT_WEIGHT] = raw[SUPPORT_WEIGHT]
        return episodes

    def _refuse_support_weight(self, episodes, where):
        """Raises if `episodes` carry padded supports that a caller would ignore."""
        if SUPPORT_WEIGHT in episodes:
            raise ValueError(
                f"{type(self).__name__} does not use `{SUPPORT_WEIGHT}` {where}; "
                "give it episodes of unpadded support sets. Received: keys="
                f"{sorted(episodes)}"
            )

    def _map_tasks(self, task_fn, episodes, params, weighted=False):
        """Runs ``task_fn(task_episode, params)`` over the task axis.

        The task episode is ``(sx, sy, qx, qy)``, with the task's support
        weights appended when ``weighted`` (``None`` if the batch has none).
        A batch with ``support_weight`` is refused unless ``weighted``, so a
        caller that would ignore the weights fails instead.
        """
        tensors = [episodes[k] for k in (SUPPORT_X, SUPPORT_Y, QUERY_X, QUERY_Y)]
        has_weight = SUPPORT_WEIGHT in episodes
        if not weighted:
            self._refuse_support_weight(episodes, "on this path")
        if has_weight:
            tensors.append(episodes[SUPPORT_WEIGHT])
        width = len(tensors)
        if weighted and not has_weight:
            given_fn = task_fn

            def task_fn(task, params):
                return given_fn(list(task) + [None], params)
        if self.vectorize:
            num_tasks = tf.shape(tensors[0])[0]
            tiled = [
                tf.broadcast_to(p, tf.concat([[num_tasks], tf.shape(p)], 0)) for p in params
            ]

            def body(args):
                return task_fn(args[:width], list(args[width:]))

            return tf.vectorized_map(body, tuple(tensors) + tuple(tiled))
        num_tasks = tensors[0].shape[0]
        if num_tasks is None:
            raise ValueError(
                "With `vectorize=False` the number of tasks per batch must be "
                "static; batch the episode dataset with drop_remainder=True, or set "
                "`tasks_per_chunk` (each chunk has a static size). "
                f"Received: support_x.shape={tensors[0].shape}"
            )
        outputs = [task_fn([t[i] for t in tensors], params) for i in range(num_tasks)]
        return tf.nest.map_structure(lambda *xs: tf.stack(xs), *outputs)

    def query_predictions(self, episodes, training=False, steps=None):
        steps = self.inner_steps if steps is None else steps
        # Evaluation needs no gradient through the inner loop.
        first_order = self.first_order or not training

        def task_fn(task, params):
            sx, sy, qx, _, weight = task
            adapted, _ = self.adapt_parameters(
                params, sx, sy, steps, first_order, support_weight=weight
            )
            return self._forward(adapted, qx)

        return self._map_tasks(task_fn, episodes, self.meta_parameters(), weighted=True)

    def query_loss_curve(self, episodes, steps):
        """Per-task query loss after 0, 1, ..., `steps` inner steps.

        Args:
            episodes: a batch of episodes (dict with a task axis).
            steps: the largest number of inner steps, a Python int.

        Returns:
            A tensor ``[steps + 1, T]``: row ``s`` is each task's query loss
            after ``s`` steps on its support set.
        """

        def task_fn(task, params):
            sx, sy, qx, qy = task
            losses = [self.per_task_loss(qy, self._forward(params, qx))]
            for _ in range(steps):
                params, _ = self.adapt_parameters(params, sx, sy, 1, True)
                losses.append(self.per_task_loss(qy, self._forward(params, qx)))
            return tf.stack(losses)

        curve = self._map_tasks(task_fn, episodes, self.meta_parameters())
        return tf.transpose(curve)

    # ----------------------------------------------------------------- adapt
    def adapt(self, support_x, support_y, steps=None, inner_lr=None):
        """Returns a copy of the backbone adapted to one task.

        The meta-weights are left untouched. The returned model is a plain
        Keras model (compiled with the learner's loss when the learner is
        compiled); its ``adaptation_loss`` attribute lists the support loss
        before each step and after the last. With
        ``batch_norm="transductive"`` the adapted model's BatchNormalization
        layers carry the support set's statistics (computed with the adapted
        weights), so its predictions do not depend on which other examples
        share a batch; ``evaluate`` and ``query_predictions`` use the query
        batch's own statistics instead, as the MAML paper does.

        Args:
            support_x: ``[S, ...]`` inputs of one task (no task axis).
            support_y: ``[S, ...]`` targets.
            steps: gradient steps; default the learner's `inner_steps`.
            inner_lr: step size; default the learner's (or learned) rates.

        Returns:
            A `keras.Model` with the adapted weights.
        """
        self._require_compiled()
        steps = check_int("steps", self.inner_steps if steps is None else steps)
        if inner_lr is not None:
            inner_lr = float(check_positive_float("inner_lr", inner_lr))
        sx, sy = self._check_support(support_x, support_y)
        key = (steps, inner_lr)
        fns = self._traced_cache("adapt")
        if key not in fns:
            lrs = None if inner_lr is None else [inner_lr] * len(self.backbone.trainable_variables)

            def run(sx, sy):
                params, losses = self.adapt_parameters(
                    self.meta_parameters(), sx, sy, steps, True, learning_rates=lrs
                )
                final = self.support_loss(sy, self._forward(params, sx))
                return params, tf.stack(losses + [final])

            fns[key] = tf.function(run, reduce_retracing=True, autograph=False)
        params, losses = fns[key](sx, sy)
        adapted = clone_backbone(self.backbone, params)
        if self.batch_norm == "transductive":
            use_batch_statistics(adapted, sx)
        adapted.adaptation_loss = [float(v) for v in losses.numpy()]
        if self.task_loss is not None:
            adapted.compile(loss=self.task_loss)
        return adapted


def check_per_variable(learner, variables, what):
    """Raises unless the backbone's trainable variables are still `variables`.

    Meta-SGD's learned rates and task retrieval's memory hold one entry per
    backbone trainable variable as they were at construction, matched by
    position; freezing or unfreezing a layer since would misalign them.
    """
    now = learner.backbone.trainable_variables
    if [id(v) for v in now] != [id(v) for v in variables]:
        raise ValueError(
            f"{type(learner).__name__} holds {what} for each trainable variable the "
            f"backbone had at construction ({[v.path for v in variables]}), but its "
            f"trainable variables are now {[v.path for v in now]}: a layer was frozen "
            "or unfrozen since. Restore the layers' `trainable` flags, or build the "
            "learner on the backbone as it is now."
        )


def clone_backbone(backbone, trainable_values):
    """A fresh copy of `backbone` with its trainable weights set to values."""
    clone = keras.models.clone_model(backbone)
    if not clone.built:
        clone.build(backbone.input_shape)
    clone.set_weights(backbone.get_weights())
    for variable, value in zip(clone.trainable_variables, trainable_values):
        variable.assign(value)
    return clone


def use_batch_statistics(model, x):
    """Sets every BatchNormalization layer's moving statistics to those of `x`.

    Runs `model` once on `x` in training mode with the layers' momentum at
    zero, so the moving mean and variance become exactly the batch statistics
    that transductive adaptation normalised with.
    """
    layers = batch_norm_layers(model)
    if not layers:
        return
    with zero_momentum(layers):
        model(x, training=True)


def batch_norm_layers(model):
    """The BatchNormalization layers of `model`, nested models included."""
    return [l for l in _all_layers(model) if isinstance(l, keras.layers.BatchNormalization)]


@contextlib.contextmanager
def zero_momentum(layers):
    """Sets the BatchNormalization `layers`' momentum to zero inside the block.

    A training-mode call (or trace) in the block makes the moving statistics
    exactly the batch statistics; the momenta are restored on leaving.
    """
    momenta = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        yield
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def _keras_batch_moments(layer):
    """Whether `layer` takes its batch statistics from Keras' own (inexact) computation.

    True for `keras.layers.BatchNormalization` and any subclass that does not
    override its `_moments` (a user's own subclass inherits the stopped
    gradient), and for a synchronised layer, which keeps Keras' computation.
    """
    if not isinstance(layer, keras.layers.BatchNormalization):
        return False
    return type(layer)._moments is keras.layers.BatchNormalization._moments or bool(layer.synchronized)
