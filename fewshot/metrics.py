"""Summaries of per-episode scores: means with 95% confidence intervals."""

import numpy as np


def mean_ci95(values):
    """Mean and half-width of the normal 95% confidence interval.

    Args:
        values: per-episode (or per-task) scores.

    Returns:
        ``(mean, half_width)`` as floats; ``half_width = 1.96 * std / sqrt(n)``
        with the sample standard deviation (0 for a single value).

    Example:

    >>> from fewshot.metrics import mean_ci95
    >>> mean, half = mean_ci95([1.0, 2.0, 3.0])
    >>> round(mean, 3), round(half, 3)
    (2.0, 1.132)
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("Invalid value received for argument `values`: it is empty.")
    if not np.isfinite(values).all():
        raise ValueError(
            "Invalid value received for argument `values`: "
            f"{int((~np.isfinite(values)).sum())} of {values.size} are NaN or infinite."
        )
    if values.size == 1:
        return float(values[0]), 0.0
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(values.size))
