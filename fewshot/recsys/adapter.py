"""A compiled function that adapts a meta-learner to one user and predicts."""

import numpy as np
import tensorflow as tf

from fewshot.algorithms.inner_loop import functional_forward
from fewshot.validation import check_int, check_positive_float


class TaskPredictor:
    """`predict_tasks` for adapters: callables ``(support_x, support_y, query_x) -> [Q]``."""

    def predict_tasks(self, tasks, support_limit=None):
        """Query predictions of every user of a `UserTasks`, one user at a time.

        Args:
            tasks: the users to score.
            support_limit: if set, adapt on only each user's last
                `support_limit` support ratings (the most recent ones).

        Returns:
            A list with one prediction array per user.
        """
        out = []
        for sx, sy, qx in zip(tasks.support_x, tasks.support_y, tasks.query_x):
            if support_limit is not None:
                keep = len(sy) - min(support_limit, len(sy))
                sx, sy = sx[keep:], sy[keep:]
            out.append(self(sx, sy, qx))
        return out


class UserAdapter(TaskPredictor):
    """Adapts a MAML-family learner to one user's ratings, then predicts.

    One `tf.function` with a shape-agnostic signature runs the inner loop on
    the user's support set (all of it, whatever its size) and scores the
    candidate items with the adapted fast weights, without cloning the
    backbone or touching its variables. This is the per-user cost of serving
    a new user once the model is loaded.

    Args:
        learner: a compiled `fewshot.MAML` (or subclass: ANIL, Meta-SGD).
        steps: inner steps; default the learner's `inner_steps`.
        inner_lr: one step size for every adapted weight; default the
            learner's own (learned, for Meta-SGD).
        clip: optional ``(low, high)``: predictions are clipped to the
            rating scale (after adaptation, so training is unaffected).

    Example:

    >>> import numpy as np, fewshot
    >>> from fewshot.recsys.adapter import UserAdapter
    >>> learner = fewshot.MAML(fewshot.models.mlp((3,), (8,), 1), inner_lr=0.1)
    >>> learner.compile(loss="mse")
    >>> adapter = UserAdapter(learner, steps=2)
    >>> x = np.ones((4, 3), "float32")
    >>> adapter(x, np.ones(4, "float32"), x).shape
    (4,)
    """

    def __init__(self, learner, steps=None, inner_lr=None, clip=None):
        learner._require_compiled()
        steps = learner.inner_steps if steps is None else steps
        check_int("steps", steps)
        if inner_lr is not None:
            check_positive_float("inner_lr", inner_lr)
        self.learner = learner
        self.steps = steps
        self.inner_lr = inner_lr
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))
        self._run = _compiled(learner, steps, inner_lr is not None)
        self._lr = tf.constant(0.0 if inner_lr is None else float(inner_lr), tf.float32)

    def __call__(self, support_x, support_y, query_x):
        """Predicted ratings ``[Q]`` of `query_x` after adapting on the support."""
        support_x = np.asarray(support_x, np.float32)
        support_y = np.asarray(support_y, np.float32).reshape(-1)
        query_x = np.asarray(query_x, np.float32)
        if len(support_x) != len(support_y):
            raise ValueError(
                "Arguments `support_x` and `support_y` must hold the same number "
                f"of ratings. Received: {len(support_x)} and {len(support_y)}"
            )
        if self.steps > 0 and len(support_y) == 0:
            # No ratings yet: the meta-learned initialisation is the prediction.
            return UserAdapter(self.learner, 0, clip=self.clip)(support_x, support_y, query_x)
        pred = self._run(support_x, support_y, query_x, self._lr).numpy()
        return pred if self.clip is None else np.clip(pred, *self.clip)


def _compiled(learner, steps, custom_lr):
    """One traced function per (learner, steps, custom step size or not).

    The step size is an argument, so trying several costs no retracing.
    """
    cache = learner._traced_cache("user_adapter")
    key = (steps, custom_lr)
    if key in cache:
        return cache[key]
    backbone = learner.backbone
    num_features = backbone.input_shape[-1]
    count = len(backbone.trainable_variables)

    def run(support_x, support_y, query_x, inner_lr):
        rates = [inner_lr] * count if custom_lr else None
        params, _ = learner.adapt_parameters(
            learner.meta_parameters(), support_x, support_y[:, None], steps, True,
            learning_rates=rates,
        )
        non_trainable = [tf.convert_to_tensor(v) for v in backbone.non_trainable_variables]
        pred = functional_forward(backbone, params, non_trainable, query_x, False)
        return tf.reshape(pred, [-1])

    spec = tf.TensorSpec([None, num_features], tf.float32)
    cache[key] = tf.function(
        run,
        input_signature=[spec, tf.TensorSpec([None], tf.float32), spec, tf.TensorSpec([], tf.float32)],
    )
    return cache[key]
