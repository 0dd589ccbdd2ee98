"""Reptile: move the initialisation toward the weights adapted to each task."""

import keras
import tensorflow as tf

from fewshot.algorithms.maml import MAML
from fewshot.episodes.episode import QUERY_Y
from fewshot.validation import check_int


@keras.saving.register_keras_serializable(package="fewshot")
class Reptile(MAML):
    """Reptile: a first-order meta-learner with no query-set gradient.

    Each meta-update adapts a copy of the weights to every task of the batch
    with `inner_steps` steps of plain gradient descent (step size
    `inner_lr`) on the task's support set, on fast weights, then moves the
    initialisation ``theta`` toward the mean adapted weights ``phi``. The
    outer step is taken by the compiled optimizer: the "gradient" it receives
    is ``theta - mean(phi)``, so ``keras.optimizers.SGD(learning_rate=eps)``
    gives exactly the paper's update ``theta += eps * (mean(phi) - theta)``
    and Adam gives the Adam-on-Reptile-direction variant; schedules,
    checkpoints and `BackupAndRestore` work as for any Keras optimizer.
    The reported ``loss`` is the query loss after adaptation. Evaluation and
    `adapt` take `inner_steps` steps on the support set, as MAML does.

    Args:
        backbone: a built Keras model.
        inner_lr: step size of the inner SGD. Default 0.01.
        inner_steps: inner steps per task; Reptile needs more than one
            (with one step it is joint training). Default 5.
        inner_batch_size: support examples per inner step in meta-training,
            or None (the default) for the whole support set at every step.
            With ``b``, each task's support set is shuffled once per
            meta-update and the inner steps walk through it ``b`` examples
            at a time (wrapping around), so successive steps see different
            examples, as in Nichol et al.'s Omniglot runs (10-shot training
            tasks, batches of 10, 5 steps). Evaluation and `adapt` always
            use the whole support set.
        adapt_layers, vectorize, batch_norm: as in `fewshot.MAML`.
        **kwargs: passed to `keras.Model`.

    Example:

    >>> import keras, fewshot
    >>> backbone = fewshot.models.mlp(input_shape=(1,), hidden=(40, 40), outputs=1)
    >>> reptile = fewshot.Reptile(backbone, inner_lr=0.02, inner_steps=5)
    >>> reptile.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    >>> stream = fewshot.episodes.Sinusoid().stream(meta_batch_size=4, batches_per_epoch=2)
    >>> history = reptile.fit(stream, epochs=1, verbose=0)

    Reference:
        Nichol, Achiam and Schulman, "On First-Order Meta-Learning
        Algorithms", arXiv:1803.02999, 2018.
    """

    _traced_settings = MAML._traced_settings + ("inner_batch_size",)

    def __init__(self, backbone, inner_lr=0.01, inner_steps=5, inner_batch_size=None, **kwargs):
        kwargs.pop("first_order", None)  # Reptile is first order by nature.
        if kwargs.get("tasks_per_chunk") is not None:
            raise ValueError(
                "Reptile's update needs no meta-gradient through the tasks, so it "
                "takes no `tasks_per_chunk`. Received: "
                f"tasks_per_chunk={kwargs['tasks_per_chunk']!r}"
            )
        super().__init__(backbone, inner_lr=inner_lr, inner_steps=inner_steps, first_order=True, **kwargs)
        self.inner_batch_size = inner_batch_size

    def get_config(self):
        config = super().get_config()
        config.pop("first_order", None)
        config["inner_batch_size"] = self.inner_batch_size
        return config

    def _check_setting(self, name, value):
        if name == "inner_batch_size" and value is not None:
            return check_int("inner_batch_size", value, minimum=1)
        return super()._check_setting(name, value)

    def _adapt_in_batches(self, params, support_x, support_y, steps):
        """`steps` inner steps, each on the next `inner_batch_size` shuffled support examples."""
        size = self.inner_batch_size
        count = tf.shape(support_x)[0]
        order = tf.argsort(tf.random.uniform([count]))  # a shuffle that tf.vectorized_map can batch
        for step in range(steps):
            rows = tf.gather(order, tf.math.floormod(tf.range(step * size, (step + 1) * size), count))
            params, _ = self.adapt_parameters(
                params, tf.gather(support_x, rows), tf.gather(support_y, rows), 1, True
            )
        return params

    def train_step(self, data):
        episodes = self._unpack(data)
        steps = self.inner_steps

        def task_fn(task, params):
            sx, sy, qx, _ = task
            if self.inner_batch_size is None:
                adapted, _ = self.adapt_parameters(params, sx, sy, steps, True)
            else:
                adapted = self._adapt_in_batches(params, sx, sy, steps)
            adapted = [tf.stop_gradient(p) for p in adapted]
            return tuple(adapted) + (self._forward(adapted, qx),)

        theta = self.meta_parameters()
        outputs = self._map_tasks(task_fn, episodes, theta)
        phis, query_pred = outputs[:-1], outputs[-1]
        # The optimizer sums updates across tf.distribute replicas: divide so
        # that the sum is the mean over the whole meta-batch.
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, theta[0].dtype)
        grads = [(t - tf.reduce_mean(phi, axis=0)) / replicas for t, phi in zip(theta, phis)]
        self.optimizer.apply(grads, self.backbone.trainable_variables)
        if self.batch_norm == "running" and self.backbone.non_trainable_variables:
            sx = episodes["support_x"]
            self.backbone(tf.reshape(sx, tf.concat([[-1], tf.shape(sx)[2:]], 0)), training=True)
        y_true = episodes[QUERY_Y]
        flat_true = tf.reshape(y_true, tf.concat([[-1], tf.shape(y_true)[2:]], 0))
        flat_pred = tf.reshape(query_pred, tf.concat([[-1], tf.shape(query_pred)[2:]], 0))
        loss = self.per_task_loss(flat_true, flat_pred)
        return self._update_metrics(loss, y_true, query_pred)
