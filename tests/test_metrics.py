import numpy as np
import pytest

from fewshot.metrics import mean_ci95


def test_mean_and_interval():
    values = np.random.default_rng(0).normal(3.0, 2.0, size=10_000)
    mean, half = mean_ci95(values)
    assert abs(mean - 3.0) < 0.1
    assert np.isclose(half, 1.96 * values.std(ddof=1) / 100)


def test_rejects_nan_and_empty():
    with pytest.raises(ValueError, match="1 of 3 are NaN"):
        mean_ci95([1.0, np.nan, 2.0])
    with pytest.raises(ValueError, match="it is empty"):
        mean_ci95([])
