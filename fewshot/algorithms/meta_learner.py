"""The base class of every algorithm: a `keras.Model` whose step is a meta-update."""

import keras
import numpy as np
import tensorflow as tf

from fewshot.callbacks import StopOnNaN
from fewshot.episodes.episode import (
    EPISODE_KEYS,
    QUERY_Y,
    SUPPORT_WEIGHT,
    SUPPORT_X,
    validate_episode,
)
from fewshot.episodes.stream import EpisodeStream
from fewshot.validation import check_int

_ACCURACY_NAMES = ("accuracy", "acc")
# Queries per forward pass in `MetaLearner.predict_task` unless a layer of the
# backbone asks for fewer (`scoring_batch_size`).
DEFAULT_QUERY_BATCH = 2048
# Reductions under which `keras.losses.Loss` divides by the replica count.
_REPLICA_SCALED_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")


class MetaLearner(keras.Model):
    """A meta-learner: `fit` takes episode batches, `adapt` tunes to one task.

    Subclasses implement `query_predictions` (the predictions for every task's
    query set after adapting on its support set) and `adapt`. This class
    supplies the Keras contract around them: `compile(optimizer, loss,
    metrics)` where `loss` is the per-task loss, `fit`/`evaluate` on streams of
    episode dicts, one meta-update per batch in `train_step`, query loss and
    metrics after adaptation in `test_step`, and a guard that stops training
    with a clear error when the loss becomes NaN.

    A batch is a dict ``{support_x, support_y, query_x, query_y}`` with a
    leading task axis, passed as ``x`` with no ``y``. Calling the model on
    such a dict returns the adapted query predictions; calling it on a plain
    tensor runs the backbone with the meta-learned weights.

    Args:
        backbone: a built Keras model mapping inputs to predictions.
        **kwargs: passed to `keras.Model` (for example `name`).
    """

    # Whether the learner reads `support_weight` (padded support sets); the
    # others refuse such episodes rather than count the padding as examples.
    _uses_support_weight = False
    # Settings that traced functions read as Python constants (`inner_lr`,
    # `finetune_steps`, ...): setting one drops every cached graph, so the
    # next call traces again with the new value instead of ignoring it.
    _traced_settings = ()

    def __setattr__(self, name, value):
        if name in self._traced_settings:
            value = self._check_setting(name, value)
        super().__setattr__(name, value)
        if name in self._traced_settings:
            self._forget_traced()

    def _check_setting(self, name, value):
        """Validates a traced setting when it is set; returns the value to store."""
        return value

    def _traced_cache(self, name):
        """The dict of traced functions named `name` (created empty on first use).

        Every cache of traced functions built from this learner (its own
        `adapt`, `fewshot.intervals`, `fewshot.recsys.adapter`, ...) lives
        here, so `_forget_traced` empties them all.
        """
        caches = self.__dict__.setdefault("_traced_caches", {})
        # The functions read the backbone's trainable variables (and masks by
        # their position) when traced: freezing or unfreezing a layer since
        # must trace them again. (Keras' own train/test functions need a new
        # `compile` then, as for any Keras model.)
        trainable = tuple(id(v) for v in self.backbone.trainable_variables)
        if self.__dict__.get("_traced_trainable") != trainable:
            for cache in caches.values():
                cache.clear()
            self.__dict__["_traced_trainable"] = trainable
        return caches.setdefault(name, {})

    def _forget_traced(self):
        """Drops the cached traced functions (Keras' and the learner's own)."""
        for cache in self.__dict__.get("_traced_caches", {}).values():
            cache.clear()
        for name in ("train_function", "test_function", "predict_function"):
            if getattr(self, name, None) is not None:
                setattr(self, name, None)

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(backbone, keras.Model):
            # `adapt` clones the backbone as a model and reads its input shape.
            raise ValueError(
                "Invalid value received for argument `backbone`. Expected a "
                "Keras model (a Sequential, functional or subclassed keras.Model; "
                "wrap a single layer in keras.Sequential([keras.Input(shape), layer])). "
                f"Received: backbone={backbone!r}"
            )
        if not backbone.built:
            raise ValueError(
                "Invalid value received for argument `backbone`: it is not "
                "built, so its weights do not exist yet. Give it an "
                "`keras.Input` or call `backbone.build(input_shape)` first. "
                f"Received: backbone={backbone.name!r} (unbuilt)"
            )
        self.backbone = backbone
        self.task_loss = None
        self.query_metrics = []
        self.built = True

    # ------------------------------------------------------------------ compile
    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Configures meta-training.

        Args:
            optimizer: the outer-loop optimizer (name or instance).
            loss: the per-task loss, used in the inner loop on the support
                set and in the outer loop on the query set. Required.
            metrics: metrics of the adapted query predictions. ``"accuracy"``
                means sparse categorical accuracy (integer labels, logits).
            **kwargs: passed to `keras.Model.compile` (`jit_compile`,
                `steps_per_execution`, `run_eagerly`).
        """
        if loss is None:
            raise ValueError(
                "Invalid value received for argument `loss`. Expected the "
                "per-task loss, for example 'mse' or "
                "keras.losses.SparseCategoricalCrossentropy(from_logits=True). "
                "Received: loss=None"
            )
        if "loss_weights" in kwargs or "weighted_metrics" in kwargs:
            raise ValueError(
                "MetaLearner.compile does not take `loss_weights` or "
                f"`weighted_metrics`. Received: {sorted(kwargs)}"
            )
        self.task_loss = keras.losses.get(loss)
        self.query_metrics = [_resolve_metric(m) for m in (metrics or [])]
        super().compile(optimizer=optimizer, **kwargs)
        self._fewshot_compile_args = {"loss": loss, "metrics": metrics}

    def get_compile_config(self):
        config = super().get_compile_config()
        if config and hasattr(self, "_fewshot_compile_args"):
            config["loss"] = keras.saving.serialize_keras_object(self.task_loss)
            config["metrics"] = [
                keras.saving.serialize_keras_object(m) for m in self.query_metrics
            ]
        return config

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        for key in ("loss_weights", "weighted_metrics"):
            config.pop(key, None)
        self.compile(**config)
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    # ------------------------------------------------------------ subclass API
    def query_predictions(self, episodes, training=False):
        """Predictions ``[T, Q, ...]`` for each task's query set after adapting."""
        raise NotImplementedError

    def adapt(self, support_x, support_y, steps=None):
        """Returns a Keras model tuned to one task (no task axis)."""
        raise NotImplementedError

    @property
    def query_batch_size(self):
        """Queries per forward pass in `predict_task` when none is given.

        2048, or the smallest ``scoring_batch_size`` that a layer of the
        backbone asks for (`fewshot.models.GraphIsomorphismNetwork`: 512).
        """
        layers = [self.backbone] + _all_layers(self.backbone)
        sizes = [getattr(layer, "scoring_batch_size", None) for layer in layers]
        return min([DEFAULT_QUERY_BATCH] + [int(size) for size in sizes if size])

    def predict_task(self, support_x, support_y, query_x, steps=None, batch_size=None):
        """Predictions for one task's queries after adapting to its support.

        The same numbers as ``adapt(support_x, support_y).predict(query_x)``,
        without Keras' predict loop: the queries run through the adapted model
        in slices of `batch_size`. Learners whose adaptation can stay in
        compiled graphs (`FineTuner`) override it so that no Keras model is
        built per task.

        Args:
            support_x: ``[S, ...]`` support inputs of one task.
            support_y: ``[S, ...]`` support targets.
            query_x: ``[Q, ...]`` query inputs of the same task.
            steps: adaptation steps; default the learner's own.
            batch_size: queries per forward pass; default
                `query_batch_size`.

        Returns:
            A NumPy array ``[Q, ...]`` of predictions (logits for
            classifiers).

        Example:

        >>> import numpy as np, fewshot
        >>> encoder = fewshot.models.mlp(input_shape=(4,), hidden=(16,), outputs=8)
        >>> protonet = fewshot.PrototypicalNetwork(encoder)
        >>> x = np.random.rand(10, 4).astype("float32")
        >>> protonet.predict_task(x[:4], [0, 0, 1, 1], x, batch_size=3).shape
        (10, 2)
        """
        if batch_size is not None:
            check_int("batch_size", batch_size, minimum=1)
        adapted = self.adapt(support_x, support_y) if steps is None else self.adapt(
            support_x, support_y, steps=steps)
        return self._in_query_slices(lambda x: adapted(x, training=False),
                                     self._check_query(query_x), batch_size)

    def _in_query_slices(self, fn, query_x, batch_size=None):
        """``fn`` over `query_x` in slices of `batch_size` (default
        `query_batch_size`), concatenated: `predict_task`'s scoring loop."""
        return _in_slices(fn, query_x, self.query_batch_size if batch_size is None else batch_size)

    def per_task_loss(self, y_true, y_pred, sample_weight=None, shrinkage=0.0):
        """The compiled loss of one task, a scalar.

        The same value on one device and under any `tf.distribute` strategy:
        Keras `Loss` objects divide a mean loss by the number of replicas
        (for Keras' own train step, whose optimizer sums gradients across
        replicas); that factor is undone here, so the inner loop's steps do
        not depend on the replica count. `train_step` scales the meta-loss.

        Args:
            y_true, y_pred: one task's targets and predictions ``[S, ...]``.
            sample_weight: optional ``[S]`` weights of the examples (0 for
                padding). The loss is then ``sum(w * loss) / sum(w)``: the
                mean over the real examples, equal to the unweighted loss of
                the unpadded set.
            shrinkage: ``c >= 0`` (a float or a scalar tensor). The loss
                becomes ``sum(w * loss) / (sum(w) + c)`` (``w = 1`` without
                `sample_weight`): the mean scaled by ``n / (n + c)`` for
                ``n = sum(w)`` examples, so a small set weighs less, as if
                ``c`` examples of zero loss were added. ``0`` (the default)
                is the mean, computed exactly as without the argument.
        """
        self._require_compiled()
        if sample_weight is None:
            loss = tf.reduce_mean(self.task_loss(y_true, y_pred))
        else:
            loss = self._weighted_mean_loss(y_true, y_pred, sample_weight)
        if not (isinstance(shrinkage, (int, float)) and shrinkage == 0):
            if sample_weight is None:
                count = tf.cast(tf.shape(y_pred)[0], loss.dtype)
            else:
                count = tf.reduce_sum(tf.cast(sample_weight, loss.dtype))
            shrinkage = tf.cast(shrinkage, loss.dtype)
            loss = loss * tf.math.divide_no_nan(count, count + shrinkage)
        if getattr(self.task_loss, "reduction", None) in _REPLICA_SCALED_REDUCTIONS:
            loss = loss * tf.cast(_num_replicas(), loss.dtype)
        return loss

    def _weighted_mean_loss(self, y_true, y_pred, sample_weight):
        weight = tf.cast(tf.reshape(sample_weight, [-1]), y_pred.dtype)
        # Rescaled to average 1, so that every Keras reduction (mean over the
        # batch, mean over the weights, or none) gives the weighted mean.
        count = tf.cast(tf.size(weight), weight.dtype)
        weight = weight * tf.math.divide_no_nan(count, tf.reduce_sum(weight))
        if isinstance(self.task_loss, keras.losses.Loss):
            return tf.reduce_mean(self.task_loss(y_true, y_pred, sample_weight=weight))
        values = self.task_loss(y_true, y_pred)  # a loss function: per-example values
        shape = tf.concat([tf.shape(weight), tf.ones([tf.rank(values) - 1], tf.int32)], 0)
        return tf.reduce_mean(values * tf.reshape(weight, shape))

    # ---------------------------------------------------------- keras contract
    def call(self, inputs, training=False):
        if isinstance(inputs, dict):
            return self.query_predictions(inputs, training=training)
        return self.backbone(inputs, training=training)

    def meta_loss(self, episodes, training=True):
        """Mean query loss over the tasks of a batch, and the predictions."""
        query_pred = self.query_predictions(episodes, training=training)
        y_true, y_pred = _flatten_tasks(episodes[QUERY_Y], query_pred)
        return self.per_task_loss(y_true, y_pred), query_pred

    #: Tasks whose meta-gradient is computed at once; None: the whole batch.
    #: Subclasses that take a ``tasks_per_chunk`` argument set it.
    tasks_per_chunk = None

    def train_step(self, data):
        episodes = self._unpack(data)
        if self.tasks_per_chunk is not None:
            return self._chunked_train_step(episodes, self.tasks_per_chunk)
        with tf.GradientTape() as tape:
            loss, query_pred = self.meta_loss(episodes, training=True)
            # The optimizer sums gradients across replicas: scale so that the
            # sum is the gradient of the mean query loss over the meta-batch.
            scaled = loss / tf.cast(_num_replicas(), loss.dtype)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply(grads, variables)
        return self._update_metrics(loss, episodes[QUERY_Y], query_pred)

    def _chunked_train_step(self, episodes, chunk):
        """The meta-update of `train_step`, accumulated over chunks of tasks.

        A `tf.while_loop` (one iteration at a time) takes the meta-gradient
        of `chunk` tasks per iteration; the tasks left over when the batch
        is not a multiple of `chunk` (a partial last batch, or a batch split
        unevenly over replicas) follow one at a time in a second loop. Each
        piece's gradient is weighted by its share of the batch's tasks and
        the pieces are summed: the same update as one pass over the whole
        batch, but only one piece's activations (and, for second-order MAML,
        inner-loop graph) are alive at a time, so peak memory does not grow
        with the meta-batch size. Every piece a loop indexes has a fixed
        size, as XLA needs.
        """
        support_x = episodes[SUPPORT_X]
        num_tasks = tf.shape(support_x)[0]
        static_tasks = support_x.shape[0]
        variables = self.trainable_variables
        num_chunks = num_tasks // chunk
        num_single = num_tasks - num_chunks * chunk
        pred_shape = []

        def accumulate(size, count, start, state):
            """Adds the meta-gradients of `count` pieces of `size` tasks from task `start` on."""
            # [count * size, ...] -> [count, size, ...]: a piece is one (XLA-friendly) index.
            # XLA compiles the body even when a loop runs no piece, and refuses to index an
            # empty axis: then one piece of repeated tasks stands in, and is never read.
            rows = tf.maximum(count, 1)
            index = tf.minimum(start + tf.range(rows * size), num_tasks - 1)
            stacked = {
                key: tf.reshape(tf.gather(value, index),
                                tf.concat([[rows, size], tf.shape(value)[1:]], 0))
                for key, value in episodes.items()
            }

            def body(i, total, grads, predictions):
                part = {
                    key: tf.ensure_shape(value[i], [size] + episodes[key].shape[1:])
                    for key, value in stacked.items()
                }
                with tf.GradientTape() as tape:
                    loss, pred = self.meta_loss(part, training=True)
                    share = loss * tf.cast(size, loss.dtype) / tf.cast(num_tasks, loss.dtype)
                    # As in `train_step`: the optimizer sums across replicas.
                    scaled = share / tf.cast(_num_replicas(), share.dtype)
                step = tape.gradient(scaled, variables)
                grads = [g if d is None else g + d for g, d in zip(grads, step)]
                pred_shape[:] = pred.shape.as_list()
                # The accumulators are in the learner's dtype; a float64 backbone's are cast.
                pred = tf.cast(pred, predictions.dtype)
                for k in range(size):  # (XLA has no TensorArray scatter)
                    predictions = predictions.write(start + i * size + k, pred[k])
                return i + 1, total + tf.cast(share, total.dtype), grads, predictions

            _, *state = tf.while_loop(
                lambda i, *_: i < count, body, (tf.constant(0), *state), parallel_iterations=1
            )
            return tuple(state)

        state = (
            tf.constant(0.0, self.compute_dtype),
            [tf.zeros_like(v) for v in variables],
            # One entry per task, so that both loops write entries of one shape (as XLA needs).
            tf.TensorArray(self.compute_dtype, size=num_tasks),
        )
        # A batch size known when tracing skips a loop that would run no piece.
        if static_tasks is None or static_tasks >= chunk:
            state = accumulate(chunk, num_chunks, 0, state)
        if static_tasks is None or static_tasks % chunk:
            state = accumulate(1, num_single, num_chunks * chunk, state)
        loss, grads, predictions = state
        self.optimizer.apply(grads, variables)
        query_pred = predictions.stack()
        # [T, Q, ...]: the prediction's trailing shape is that of the pieces.
        query_pred.set_shape([static_tasks] + pred_shape[1:])
        return self._update_metrics(loss, episodes[QUERY_Y], query_pred)

    def test_step(self, data):
        episodes = self._unpack(data)
        loss, query_pred = self.meta_loss(episodes, training=False)
        return self._update_metrics(loss, episodes[QUERY_Y], query_pred)

    def predict_step(self, data):
        return self(self._unpack(data), training=False)

    def fit(self, x=None, y=None, callbacks=None, validation_data=None, **kwargs):
        """`keras.Model.fit` on episode batches; also takes an `EpisodeStream`."""
        self._require_compiled()
        callbacks = list(callbacks or [])
        if isinstance(x, EpisodeStream):
            callbacks.insert(0, x.callback)
            x = x.dataset
        if isinstance(validation_data, EpisodeStream):
            validation_data = validation_data.dataset
        if not any(isinstance(c, StopOnNaN) for c in callbacks):
            callbacks.append(StopOnNaN())
        # Episode streams are seeded per batch; Keras' shuffle does not apply.
        kwargs.setdefault("shuffle", False)
        return super().fit(
            x, y, callbacks=callbacks, validation_data=validation_data, **kwargs
        )

    def evaluate(self, x=None, y=None, **kwargs):
        """`keras.Model.evaluate`: query loss and metrics after adaptation."""
        self._require_compiled()
        if isinstance(x, EpisodeStream):
            x = x.dataset
        return super().evaluate(x, y, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["backbone"] = keras.saving.serialize_keras_object(self.backbone)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' TF trainer reduces the first batch across replicas (a MEAN)
        # only to learn its shapes for a symbolic build; under
        # MultiWorkerMirroredStrategy that reduce fails on a dict of episode
        # tensors. One replica's batch carries the same structure and dtypes.
        if self._distribute_strategy is None or iterator is None:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(_first_local_value, next(batches))
            break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    # ---------------------------------------------------------------- helpers
    def _require_compiled(self):
        if self.task_loss is None:
            raise RuntimeError(
                f"{type(self).__name__} must be compiled before use: call "
                "`compile(optimizer, loss=..., metrics=...)` first."
            )

    def _unpack(self, data):
        if isinstance(data, (tuple, list)):
            if len(data) > 1 and data[1] is not None:
                raise ValueError(
                    "Meta-learners take episode dicts as `x` with no `y`. "
                    f"Received: a tuple of {len(data)} elements"
                )
            data = data[0]
        validate_episode(data)
        if SUPPORT_WEIGHT in data and not self._uses_support_weight:
            raise ValueError(
                f"{type(self).__name__} does not use `{SUPPORT_WEIGHT}`: the padding rows of "
                "padded support sets would count as examples. Give it episodes of "
                f"unpadded support sets. Received: keys={sorted(data)}"
            )
        return {k: data[k] for k in EPISODE_KEYS}

    def _update_metrics(self, loss, query_y, query_pred):
        self._loss_tracker.update_state(loss)
        y_true, y_pred = _flatten_tasks(query_y, query_pred)
        for metric in self.query_metrics:
            metric.update_state(y_true, y_pred)
        logs = self.get_metrics_result()
        if _multi_worker():
            # Keras reduces each log across workers with
            # strategy.reduce(MEAN, axis=0), which needs an axis to reduce.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def _check_support(self, support_x, support_y):
        """Validates one task's support set; returns float/label tensors."""
        sx = _as_array("support_x", support_x)
        sy = _as_array("support_y", support_y)
        if sx.ndim < 1 or sy.ndim < 1 or len(sx) != len(sy):
            raise ValueError(
                "Arguments `support_x` and `support_y` must hold the same "
                "number of examples, one task with no task axis. Received: "
                f"support_x.shape={sx.shape}, support_y.shape={sy.shape}"
            )
        if len(sx) == 0:
            raise ValueError(
                "Invalid value received for argument `support_x`: the support "
                f"set is empty. Received: support_x.shape={sx.shape}"
            )
        self._check_feature_shape("support_x", sx)
        return tf.constant(sx, dtype=self._input_dtype()), tf.constant(sy)

    def _check_query(self, query_x):
        """Validates one task's query inputs; returns a NumPy array."""
        qx = _as_array("query_x", query_x)
        if qx.ndim < 1:
            raise ValueError(
                "Invalid value received for argument `query_x`: it must hold "
                f"examples of one task, with no task axis. Received: query_x.shape={qx.shape}"
            )
        self._check_feature_shape("query_x", qx)
        return qx.astype(self._input_dtype(), copy=False)

    def _check_feature_shape(self, name, x):
        """Raises unless the examples of `x` (axis 0) fit the backbone's input."""
        expected = _input_feature_shape(self.backbone)
        if expected is not None and not _shape_matches(x.shape[1:], expected):
            raise ValueError(
                f"Invalid value received for argument `{name}`: its examples have "
                f"shape {tuple(x.shape[1:])} but the backbone takes {tuple(expected)} "
                f"(one task, no task axis). Received: {name}.shape={x.shape}"
            )

    def _input_dtype(self):
        variables = self.backbone.trainable_variables
        return variables[0].dtype if variables else "float32"


def _num_replicas():
    """Replicas in sync under the current `tf.distribute` strategy (1 if none)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def _multi_worker():
    """Whether the step runs under MultiWorkerMirroredStrategy across workers."""
    strategy = tf.distribute.get_strategy()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        strategy.extended._in_multi_worker_mode()
    )


def _first_local_value(value):
    if isinstance(value, tf.distribute.DistributedValues):
        return value.values[0]
    return value


def _resolve_metric(metric):
    if isinstance(metric, str) and metric.lower() in _ACCURACY_NAMES:
        return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    resolved = keras.metrics.get(metric)
    if isinstance(resolved, keras.metrics.Metric):
        return resolved
    return keras.metrics.MeanMetricWrapper(resolved, name=getattr(resolved, "__name__", str(metric)))


def _flatten_tasks(y_true, y_pred):
    """Merges the task and example axes: ``[T, Q, ...] -> [T*Q, ...]``."""
    y_true = tf.reshape(y_true, tf.concat([[-1], tf.shape(y_true)[2:]], 0))
    y_pred = tf.reshape(y_pred, tf.concat([[-1], tf.shape(y_pred)[2:]], 0))
    return y_true, y_pred


def _all_layers(model):
    """Every layer inside `model`, depth first."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        found.extend(_all_layers(layer))
    return found


def _random_layers(model):
    """The layers inside `model` that draw random numbers (Dropout, GaussianNoise, ...)."""
    return [layer for layer in _all_layers(model) if getattr(layer, "_seed_generators", None)]


def _seed_positions(model):
    """Where the random layers' seed states sit in ``model.non_trainable_variables``.

    `keras.Model.stateless_call` takes those states as inputs and returns the
    advanced ones; a caller that keeps passing the same states gets the same
    dropout mask on every call.
    """
    states = {id(g.state) for layer in _random_layers(model) for g in layer._seed_generators}
    return [i for i, v in enumerate(model.non_trainable_variables) if id(v) in states]


def _in_slices(fn, x, batch_size):
    """``fn`` over `x` in slices of `batch_size` rows, concatenated (NumPy)."""
    batch_size = check_int("batch_size", batch_size, minimum=1)
    parts = [np.asarray(fn(tf.constant(x[i : i + batch_size])))
             for i in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.asarray(fn(tf.constant(x)))


def _as_array(name, value):
    try:
        array = np.asarray(value)
    except Exception as error:  # ragged lists and the like
        raise ValueError(
            f"Invalid value received for argument `{name}`: it cannot be read "
            f"as an array ({error}). Received: {name} of type "
            f"{type(value).__name__}"
        ) from None
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == bool
    ):
        raise ValueError(
            f"Invalid value received for argument `{name}`: expected numbers. "
            f"Received: {name} with dtype {array.dtype}"
        )
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array.reshape(len(array), -1))).any(axis=1).sum())
        raise ValueError(
            f"Invalid value received for argument `{name}`: {bad} of "
            f"{len(array)} examples hold NaN or infinite values."
        )
    return array


def _input_feature_shape(model):
    try:
        shape = model.input_shape
    except (AttributeError, ValueError):
        return None
    if isinstance(shape, list) or shape is None:
        return None
    return shape[1:]


def _shape_matches(actual, expected):
    return len(actual) == len(expected) and all(
        e is None or a == e for a, e in zip(actual, expected)
    )
