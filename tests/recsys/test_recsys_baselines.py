import numpy as np
import pytest

from fewshot.recsys.baselines import BiasModel, GlobalMean, ItemMean, UserMean
from fewshot.recsys.evaluation import ndcg_at_k, summarize, user_scores

ITEMS = [1, 1, 2, 2, 3]
RATINGS = [5.0, 4.0, 2.0, 1.0, 3.0]


def test_means():
    assert GlobalMean().fit(ITEMS, RATINGS).predict([], [], [1, 9]).tolist() == [3.0, 3.0]
    assert ItemMean().fit(ITEMS, RATINGS).predict([], [], [1, 2, 9]).tolist() == [4.5, 1.5, 3.0]
    assert UserMean().fit(ITEMS, RATINGS).predict([1, 2], [4.0, 2.0], [3]).tolist() == [3.0]
    # A user with no ratings yet gets the global mean.
    assert UserMean().fit(ITEMS, RATINGS).predict([], [], [3]).tolist() == [3.0]


def test_bias_model_shrinks_and_clips():
    model = BiasModel(item_reg=0.0, user_reg=0.0).fit(ITEMS, RATINGS)
    # b_1 = 1.5, b_2 = -1.5; user rated item 1 at 5 -> b_u = 0.5.
    np.testing.assert_allclose(model.predict([1], [5.0], [1, 2, 9]), [5.0, 2.0, 3.5])
    shrunk = BiasModel(item_reg=2.0, user_reg=1.0).fit(ITEMS, RATINGS)
    np.testing.assert_allclose(shrunk.predict([], [], [1]), [3.0 + 3.0 / 4.0])
    with pytest.raises(ValueError, match="Received: item_reg=-1"):
        BiasModel(item_reg=-1)


def test_ndcg_and_scores():
    assert ndcg_at_k([5, 1, 3], [5.0, 1.0, 3.0], 3) == pytest.approx(1.0)
    worst = ndcg_at_k([5, 1, 3], [1.0, 5.0, 3.0], 1)
    assert worst == pytest.approx(1 / 5)
    # Ties keep the query order.
    assert ndcg_at_k([1, 5], [3.0, 3.0], 1) == pytest.approx(1 / 5)
    scores = user_scores([[1, 2], [3, 5]], [[1, 4], [3, 5]])
    np.testing.assert_allclose(scores["mae"], [1.0, 0.0])
    np.testing.assert_allclose(scores["mse"], [2.0, 0.0])
    summary = summarize(scores)
    assert summary["mae"][0] == pytest.approx(0.5)
    assert summary["rmse"][0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one array per user"):
        user_scores([[1]], [])
