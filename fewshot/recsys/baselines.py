"""Rating baselines that need no meta-learning.

Every baseline is fitted on the ratings of the training users and then
predicts a new user's query items from that user's support set alone:

- `GlobalMean`: the mean training rating.
- `ItemMean`: each item's mean training rating (unseen items: the global mean).
- `UserMean`: the mean of the user's support ratings.
- `BiasModel`: ``mu + b_item + b_user`` with shrunk (regularised) biases,
  the classic baseline predictor of Koren (2010).
"""

import numpy as np


class GlobalMean:
    """Predicts the mean training rating for every item."""

    def fit(self, items, ratings):
        self.mean = float(np.mean(ratings))
        return self

    def predict(self, support_items, support_ratings, query_items):
        return np.full(len(query_items), self.mean, np.float32)


class ItemMean(GlobalMean):
    """Predicts each item's mean training rating (the global mean if unseen)."""

    def fit(self, items, ratings):
        super().fit(items, ratings)
        items = np.asarray(items)
        ratings = np.asarray(ratings, np.float64)
        ids, inverse = np.unique(items, return_inverse=True)
        sums = np.bincount(inverse, ratings)
        counts = np.bincount(inverse)
        self.item_mean = dict(zip(ids.tolist(), (sums / counts).tolist()))
        return self

    def predict(self, support_items, support_ratings, query_items):
        return np.asarray(
            [self.item_mean.get(int(i), self.mean) for i in query_items], np.float32
        )


class UserMean(GlobalMean):
    """Predicts the mean of the user's own support ratings."""

    def predict(self, support_items, support_ratings, query_items):
        if len(support_ratings) == 0:
            return super().predict(support_items, support_ratings, query_items)
        return np.full(len(query_items), float(np.mean(support_ratings)), np.float32)


class BiasModel(GlobalMean):
    """``mu + b_item + b_user``, biases shrunk toward zero.

    ``b_item = sum(r - mu) / (n_item + item_reg)`` over the training ratings;
    for a new user ``b_user = sum(r - mu - b_item) / (n_user + user_reg)``
    over their support ratings. Predictions are clipped to the rating scale.

    Args:
        item_reg: shrinkage of the item biases. Default 10.
        user_reg: shrinkage of the user bias. Default 5.
        rating_range: ``(low, high)`` clip of the predictions.

    Example:

    >>> from fewshot.recsys.baselines import BiasModel
    >>> model = BiasModel().fit([1, 1, 2], [5.0, 4.0, 2.0])
    >>> round(float(model.predict([1], [5.0], [2])[0]), 2)
    3.71

    Reference:
        Koren, "Factor in the Neighbors: Scalable and Accurate Collaborative
        Filtering", ACM TKDD 2010 (baseline predictors).
    """

    def __init__(self, item_reg=10.0, user_reg=5.0, rating_range=(1.0, 5.0)):
        for name, value in (("item_reg", item_reg), ("user_reg", user_reg)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(
                    f"Invalid value received for argument `{name}`. Expected a "
                    f"float >= 0. Received: {name}={value!r}"
                )
        self.item_reg = float(item_reg)
        self.user_reg = float(user_reg)
        self.rating_range = tuple(rating_range)

    def fit(self, items, ratings):
        super().fit(items, ratings)
        items = np.asarray(items)
        ratings = np.asarray(ratings, np.float64)
        ids, inverse = np.unique(items, return_inverse=True)
        sums = np.bincount(inverse, ratings - self.mean)
        counts = np.bincount(inverse)
        self.item_bias = dict(zip(ids.tolist(), (sums / (counts + self.item_reg)).tolist()))
        return self

    def _bias(self, items):
        return np.asarray([self.item_bias.get(int(i), 0.0) for i in items], np.float64)

    def predict(self, support_items, support_ratings, query_items):
        residual = np.asarray(support_ratings, np.float64) - self.mean - self._bias(support_items)
        user_bias = residual.sum() / (len(residual) + self.user_reg)
        pred = self.mean + self._bias(query_items) + user_bias
        return np.clip(pred, *self.rating_range).astype(np.float32)


BASELINES = {
    "global_mean": GlobalMean,
    "item_mean": ItemMean,
    "user_mean": UserMean,
    "bias": BiasModel,
}
