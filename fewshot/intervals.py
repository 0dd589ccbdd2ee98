"""Prediction intervals for few-shot regression from leave-one-out residuals.

A model adapted to K labelled examples gives point predictions. The
jackknife+ (Barber, Candès, Ramdas & Tibshirani, 2021) turns them into
intervals without any extra data: adapt K times, each time leaving one
support example out; the held-out example's absolute residual ``R_i`` says
how wrong an adaptation on K-1 examples can be. For a query ``x`` with
leave-one-out predictions ``mu_{-i}(x)`` the interval is

    [ q_lo{ mu_{-i}(x) - R_i },  q_hi{ mu_{-i}(x) + R_i } ]

where ``q_lo`` is the ``floor(alpha (K+1))``-th smallest value and ``q_hi``
the ``ceil((1-alpha) (K+1))``-th smallest. If the support and query examples
are exchangeable (drawn from the same task), the interval covers the true
value with probability at least ``1 - 2 alpha`` whatever the model, and
about ``1 - alpha`` in practice. The plain jackknife (``method="jackknife"``)
is ``prediction +- q_hi{R_i}``, centred on the full model's prediction; it
has no guarantee for unstable adaptations but is often close.

With too few examples for the chosen level (``K < (1 - alpha) / alpha``, so
K < 9 at 90 %) the interval is unbounded (``-inf``, ``inf``): an honest
answer, not an error.

The K leave-one-out adaptations are one batched call: `learner_predictor`
turns a MAML-family learner into one compiled function over a task axis
(`tf.vectorized_map`), so intervals cost about one more adaptation.

Example:

>>> import numpy as np
>>> from fewshot.intervals import jackknife_plus
>>> def least_squares(sx, sy, qx):  # batched over tasks: [T,S,1], [T,S,1], [T,Q,1]
...     slope = (sx * sy).sum(1, keepdims=True) / (sx * sx).sum(1, keepdims=True)
...     return slope * qx
>>> rng = np.random.default_rng(0)
>>> x = rng.uniform(-1, 1, (20, 1)); y = 2 * x + rng.normal(0, 0.1, (20, 1))
>>> band = jackknife_plus(least_squares, x, y, np.array([[0.5]]), alpha=0.1)
>>> bool(band.lower[0] < 1.0 < band.upper[0]), band.level
(True, 0.9)

Reference:
    Barber, Candès, Ramdas, Tibshirani. "Predictive inference with the
    jackknife+". Annals of Statistics 49(1), 2021.
"""

import dataclasses
import math

import numpy as np

METHODS = ("jackknife+", "jackknife")


@dataclasses.dataclass
class PredictionInterval:
    """Point predictions with lower and upper bounds, one per query.

    Attributes:
        prediction: ``[Q]`` the model adapted on the whole support set (or
            the prediction given to `jackknife_plus`).
        lower, upper: ``[Q]`` the interval (``-inf``/``inf`` when the
            support set is too small for the level).
        level: the nominal coverage ``1 - alpha``.
        method: ``"jackknife+"`` or ``"jackknife"``.
        residuals: ``[K]`` the absolute leave-one-out residuals.
    """

    prediction: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float
    method: str
    residuals: np.ndarray

    @property
    def bounded(self):
        """Whether the intervals are finite (enough support examples)."""
        return bool(np.isfinite(self.lower).all() and np.isfinite(self.upper).all())


def min_support(alpha):
    """The fewest support examples that give finite intervals at level 1 - alpha."""
    _check_alpha(alpha)
    return math.ceil((1.0 - alpha) / alpha - 1e-9)


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise ValueError(
            "Invalid value received for argument `alpha`. Expected a float in "
            f"(0, 1). Received: alpha={alpha!r}"
        )


def leave_one_out(support_x, support_y):
    """The K leave-one-out support sets of one task.

    Args:
        support_x: ``[K, ...]`` inputs.
        support_y: ``[K, ...]`` targets.

    Returns:
        ``(x [K, K-1, ...], y [K, K-1, ...])``: row ``i`` omits example ``i``.
    """
    support_x, support_y = np.asarray(support_x), np.asarray(support_y)
    k = len(support_x)
    keep = ~np.eye(k, dtype=bool)
    index = np.nonzero(keep)[1].reshape(k, k - 1)
    return support_x[index], support_y[index]


def jackknife_plus(
    predictor, support_x, support_y, query_x, alpha=0.1, prediction=None, method="jackknife+"
):
    """Intervals for one task's queries from leave-one-out adaptations.

    Args:
        predictor: ``fn(support_x [T,S,...], support_y [T,S,...],
            query_x [T,Q,...]) -> [T,Q] (or [T,Q,1])``: adapts on each of T
            support sets and predicts its queries; called once, with
            ``T = K`` leave-one-out tasks (see `learner_predictor`).
        support_x: ``[K, ...]`` the labelled inputs, ``K >= 2``.
        support_y: ``[K]`` or ``[K, 1]`` their targets.
        query_x: ``[Q, ...]`` the inputs to predict.
        alpha: miscoverage; the level is ``1 - alpha``.
        prediction: ``[Q]`` the full model's predictions (default: the
            median of the leave-one-out predictions).
        method: ``"jackknife+"`` (default) or ``"jackknife"``.

    Returns:
        A `PredictionInterval`.
    """
    _check_alpha(alpha)
    if method not in METHODS:
        raise ValueError(
            f"Invalid value received for argument `method`. Expected one of "
            f"{list(METHODS)}. Received: method={method!r}"
        )
    support_x = np.asarray(support_x, np.float32)
    support_y = np.asarray(support_y, np.float32).reshape(len(support_x), -1)
    query_x = np.asarray(query_x, np.float32)
    k, q = len(support_x), len(query_x)
    if k < 2 or support_y.shape[1] != 1:
        raise ValueError(
            "Intervals need at least 2 support examples with one target each. "
            f"Received: support_x.shape={support_x.shape}, support_y.shape={support_y.shape}"
        )
    loo_x, loo_y = leave_one_out(support_x, support_y)
    # Each task predicts its held-out example first, then the queries.
    held = support_x[:, None]
    queries = np.broadcast_to(query_x, (k, *query_x.shape))
    out = np.asarray(predictor(loo_x, loo_y, np.concatenate([held, queries], axis=1)), np.float64)
    out = out.reshape(k, q + 1)
    residuals = np.abs(support_y[:, 0] - out[:, 0])
    loo = out[:, 1:]  # [K, Q]
    if prediction is None:
        prediction = np.median(loo, axis=0) if q else np.zeros(0)
    prediction = np.asarray(prediction, np.float64).reshape(q)
    hi_rank = math.ceil((1.0 - alpha) * (k + 1) - 1e-9)  # 1-based
    lo_rank = math.floor(alpha * (k + 1) + 1e-9)
    if method == "jackknife":
        radius = np.sort(residuals)[hi_rank - 1] if hi_rank <= k else np.inf
        lower, upper = prediction - radius, prediction + radius
    else:
        upper = np.sort(loo + residuals[:, None], axis=0)[hi_rank - 1] if hi_rank <= k else np.full(q, np.inf)
        lower = np.sort(loo - residuals[:, None], axis=0)[lo_rank - 1] if lo_rank >= 1 else np.full(q, -np.inf)
    return PredictionInterval(
        prediction=prediction, lower=np.asarray(lower, np.float64), upper=np.asarray(upper, np.float64),
        level=round(1.0 - alpha, 10), method=method, residuals=residuals,
    )


def learner_predictor(learner, steps=None, inner_lr=None):
    """One compiled, task-batched adapt-and-predict function of a learner.

    For a MAML-family learner (MAML, FOMAML, ANIL, Meta-SGD and the
    fine-tuning wrapper of `fewshot.model_catalog.load_learner`): the same
    gradient steps as ``learner.adapt(sx, sy, steps, inner_lr)``, run on
    every task of a batch at once with `tf.vectorized_map`, then the
    adapted weights predict that task's queries (inference mode). Traced
    once per learner, step count and step-size choice (one input
    signature: any number of tasks, support and query examples).

    Args:
        learner: a compiled learner with ``adapt_parameters``.
        steps: inner steps (default the learner's).
        inner_lr: one step size for every weight (default the learner's).

    Returns:
        ``fn(support_x [T,S,...], support_y [T,S,outputs], query_x [T,Q,...])
        -> numpy [T, Q, outputs]``.

    Raises:
        ValueError: the learner does not adapt with gradient steps.
    """
    import tensorflow as tf

    from fewshot.algorithms.inner_loop import functional_forward

    if not callable(getattr(learner, "adapt_parameters", None)):
        raise ValueError(
            "Leave-one-out intervals need a learner that adapts with gradient "
            f"steps (MAML family). Received: {type(learner).__name__}"
        )
    steps = learner.inner_steps if steps is None else int(steps)
    cache = learner._traced_cache("intervals")
    key = (steps, inner_lr)
    if key not in cache:
        backbone = learner.backbone
        count = len(backbone.trainable_variables)
        rates = None if inner_lr is None else [float(inner_lr)] * count

        def one_task(args):
            sx, sy, qx = args
            params, _ = learner.adapt_parameters(
                learner.meta_parameters(), sx, sy, steps, True, learning_rates=rates
            )
            non_trainable = [tf.convert_to_tensor(v) for v in backbone.non_trainable_variables]
            return functional_forward(backbone, params, non_trainable, qx, False)

        features = [None, None, *backbone.input_shape[1:]]
        x_spec = tf.TensorSpec(features, tf.float32)
        signature = [x_spec, tf.TensorSpec([None, None, None], tf.float32), x_spec]

        @tf.function(input_signature=signature, autograph=False)
        def run(sx, sy, qx):
            return tf.vectorized_map(one_task, (sx, sy, qx))

        cache[key] = run

    def predict(support_x, support_y, query_x):
        return cache[key](
            tf.constant(support_x, tf.float32), tf.constant(support_y, tf.float32),
            tf.constant(query_x, tf.float32),
        ).numpy()

    return predict


def per_task(fn):
    """A batched predictor from a one-task ``fn(sx, sy, qx) -> [Q, ...]``.

    For adapters that take one task at a time, such as an exported
    SavedModel's ``adapt_and_predict`` signature.
    """

    def predict(support_x, support_y, query_x):
        return np.stack([np.asarray(fn(sx, sy, qx)) for sx, sy, qx in zip(support_x, support_y, query_x)])

    return predict
