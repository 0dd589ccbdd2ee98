"""Per-user scores of rating predictions: MAE, RMSE and nDCG@k.

Every new user is one task, so scores are computed per user and summarised
over users with a 95% confidence interval (`fewshot.metrics.mean_ci95`).
RMSE is pooled: the square root of the mean over users of each user's mean
squared error, its interval carried over from the MSE's by the delta method.
"""

import numpy as np

from fewshot.metrics import mean_ci95


def ndcg_at_k(y_true, y_pred, k=3):
    """nDCG@k of one user's ranking of their query items.

    The items are ranked by predicted rating (ties keep the query order, which
    is time order); the gain of an item is its true rating and the discount
    ``1 / log2(rank + 1)``; the ideal ranking sorts by true rating.

    Example:

    >>> from fewshot.recsys.evaluation import ndcg_at_k
    >>> round(ndcg_at_k([5, 1, 3], [4.0, 2.0, 3.0], k=2), 3)
    1.0
    """
    y_true = np.asarray(y_true, np.float64).ravel()
    y_pred = np.asarray(y_pred, np.float64).ravel()
    k = min(int(k), len(y_true))
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    order = np.argsort(-y_pred, kind="stable")[:k]
    ideal = np.sort(y_true)[::-1][:k]
    best = float((ideal * discount).sum())
    return float((y_true[order] * discount).sum()) / best if best > 0 else 0.0


def user_scores(y_true_list, y_pred_list, k=3):
    """Per-user ``{"mae", "mse", "ndcg3"}`` arrays for lists of query sets."""
    if len(y_true_list) != len(y_pred_list):
        raise ValueError(
            "Arguments `y_true_list` and `y_pred_list` must hold one array per "
            f"user. Received: {len(y_true_list)} and {len(y_pred_list)}"
        )
    mae, mse, ndcg = [], [], []
    for y_true, y_pred in zip(y_true_list, y_pred_list):
        y_true = np.asarray(y_true, np.float64).ravel()
        y_pred = np.asarray(y_pred, np.float64).ravel()
        if y_true.shape != y_pred.shape:
            raise ValueError(
                "Each user's predictions must match their query ratings. "
                f"Received shapes {y_pred.shape} and {y_true.shape}"
            )
        error = y_pred - y_true
        mae.append(np.abs(error).mean())
        mse.append((error**2).mean())
        ndcg.append(ndcg_at_k(y_true, y_pred, k))
    return {"mae": np.asarray(mae), "mse": np.asarray(mse), f"ndcg{k}": np.asarray(ndcg)}


def summarize(scores):
    """``{metric: (mean, ci95)}`` for ``mae``, ``rmse`` and the nDCG."""
    out = {"mae": mean_ci95(scores["mae"])}
    mse, mse_half = mean_ci95(scores["mse"])
    rmse = float(np.sqrt(mse))
    out["rmse"] = (rmse, mse_half / (2 * rmse) if rmse > 0 else 0.0)
    for name, values in scores.items():
        if name.startswith("ndcg"):
            out[name] = mean_ci95(values)
    return out
