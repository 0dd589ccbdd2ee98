"""Leave-one-out prediction intervals (fewshot.intervals)."""

import numpy as np
import pytest

from fewshot import intervals


def _least_squares(sx, sy, qx):
    """Batched ordinary least squares with an intercept: [T,S,1] -> [T,Q]."""
    design = np.concatenate([sx, np.ones_like(sx)], axis=-1)
    coef = np.stack([np.linalg.lstsq(d, y, rcond=None)[0] for d, y in zip(design, sy)])
    return (np.concatenate([qx, np.ones_like(qx)], axis=-1) @ coef)[..., 0]


@pytest.mark.parametrize("method", ["jackknife+", "jackknife"])
def test_coverage_on_synthetic_tasks(method):
    """Across many noisy linear tasks, about 1 - alpha of the queries are covered."""
    rng = np.random.default_rng(0)
    k, q, tasks, alpha = 19, 20, 300, 0.1
    covered, widths = [], []
    for _ in range(tasks):
        slope, bias = rng.normal(size=2)
        x = rng.uniform(-2, 2, (k + q, 1))
        y = slope * x + bias + rng.standard_t(5, size=(k + q, 1)) * 0.3
        band = intervals.jackknife_plus(
            _least_squares, x[:k], y[:k], x[k:], alpha=alpha, method=method,
            prediction=_least_squares(x[None, :k], y[None, :k], x[None, k:])[0],
        )
        covered.append((band.lower <= y[k:, 0]) & (y[k:, 0] <= band.upper))
        widths.append(band.upper - band.lower)
    coverage = float(np.mean(covered))
    assert 0.86 <= coverage <= 0.96, coverage
    assert np.all(np.concatenate(widths) > 0)


def test_interval_maths_on_a_hand_example():
    """Constant predictor: the jackknife+ bounds are order statistics of y -+ |y - mean_{-i}|."""
    y = np.arange(1.0, 11.0)[:, None]  # K = 10

    def mean(sx, sy, qx):
        return np.broadcast_to(sy.mean(axis=1), qx.shape[:2])

    band = intervals.jackknife_plus(mean, np.zeros((10, 1)), y, np.zeros((1, 1)), alpha=0.1)
    loo = (y.sum() - y[:, 0]) / 9
    residuals = np.abs(y[:, 0] - loo)
    np.testing.assert_allclose(band.residuals, residuals, rtol=1e-5)
    # ceil(0.9 * 11) = 10th smallest (the largest) and floor(0.1 * 11) = 1st smallest.
    np.testing.assert_allclose(band.upper, [np.max(loo + residuals)], rtol=1e-5)
    np.testing.assert_allclose(band.lower, [np.min(loo - residuals)], rtol=1e-5)
    assert band.bounded and band.level == 0.9
    plain = intervals.jackknife_plus(mean, np.zeros((10, 1)), y, np.zeros((1, 1)), prediction=[5.5],
                                     alpha=0.1, method="jackknife")
    np.testing.assert_allclose([plain.lower[0], plain.upper[0]], [5.5 - residuals.max(), 5.5 + residuals.max()], rtol=1e-5)


def test_too_few_examples_give_unbounded_intervals_and_bad_arguments_are_named():
    assert intervals.min_support(0.1) == 9 and intervals.min_support(0.2) == 4
    x = np.linspace(0, 1, 5)[:, None]
    band = intervals.jackknife_plus(_least_squares, x, 2 * x, np.array([[0.5]]), alpha=0.1)
    assert not band.bounded and band.upper[0] == np.inf and band.lower[0] == -np.inf
    assert intervals.jackknife_plus(_least_squares, x, 2 * x, np.array([[0.5]]), alpha=0.2).bounded
    with pytest.raises(ValueError, match="Received: alpha=1.5"):
        intervals.jackknife_plus(_least_squares, x, x, x, alpha=1.5)
    with pytest.raises(ValueError, match="Received: method='bootstrap'"):
        intervals.jackknife_plus(_least_squares, x, x, x, method="bootstrap")
    with pytest.raises(ValueError, match="at least 2 support examples"):
        intervals.jackknife_plus(_least_squares, x[:1], x[:1], x)


def test_leave_one_out_sets():
    x = np.arange(4)[:, None]
    loo_x, loo_y = intervals.leave_one_out(x, x * 10)
    assert loo_x[:, :, 0].tolist() == [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]
    assert loo_y.shape == (4, 3, 1)


def test_learner_predictor_matches_adapt():
    """The batched, compiled leave-one-out adaptations equal K calls of `adapt`."""
    import fewshot

    import keras

    keras.utils.set_random_seed(0)
    learner = fewshot.MAML(fewshot.models.mlp((1,), (8,), 1), inner_lr=0.05, inner_steps=2)
    learner.compile(loss="mse")
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, (6, 1)).astype(np.float32)
    y = np.sin(x).astype(np.float32)
    query = np.array([[0.5], [1.5]], np.float32)
    predict = intervals.learner_predictor(learner, steps=3, inner_lr=0.02)
    loo_x, loo_y = intervals.leave_one_out(x, y)
    got = predict(loo_x, loo_y, np.broadcast_to(query, (6, 2, 1)))
    for i in range(6):
        adapted = learner.adapt(loo_x[i], loo_y[i], steps=3, inner_lr=0.02)
        np.testing.assert_allclose(got[i], adapted(query).numpy(), rtol=1e-4, atol=1e-5)
    band = intervals.jackknife_plus(predict, x, y, query, alpha=0.25)
    assert band.bounded and np.all(band.lower <= band.upper)
    with pytest.raises(ValueError, match="Received: PrototypicalNetwork"):
        intervals.learner_predictor(fewshot.PrototypicalNetwork(fewshot.models.mlp((1,), (4,), 2)))
