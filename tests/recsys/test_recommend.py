import keras
import numpy as np
import pandas as pd
import pytest

import fewshot
from fewshot.datasets import load_movielens
from fewshot.datasets.movielens import write_tiny_movielens
from fewshot.datasets.user_tasks import RatingFeatures, user_tasks
from fewshot.models.recommender import decision_layer_names
from fewshot.recsys.adapter import UserAdapter
from fewshot.recsys.recommend import check_compatible, load_recommender, recommend


@pytest.fixture
def setup(tmp_path):
    data = load_movielens(write_tiny_movielens(tmp_path, num_users=12, num_items=30))
    features = RatingFeatures.from_movielens(data)
    backbone = fewshot.models.recommender(features.vocabulary_sizes(), len(features.genres), 4, (8,))
    learner = fewshot.MAML(backbone, inner_lr=0.05, inner_steps=3,
                           adapt_layers=decision_layer_names(backbone))
    learner.compile(loss="mse")
    return data, features, learner


def test_adapter_matches_adapt(setup):
    data, features, learner = setup
    task = user_tasks(data, features)
    sx, sy, qx = task.support_x[0], task.support_y[0], task.query_x[0]
    adapter = UserAdapter(learner)
    expected = learner.adapt(sx, sy[:, None]).predict(qx, verbose=0).ravel()
    np.testing.assert_allclose(adapter(sx, sy, qx), expected, rtol=1e-4, atol=1e-5)
    # No support ratings: the meta-learned initialisation predicts.
    np.testing.assert_allclose(adapter(sx[:0], sy[:0], qx), learner.backbone(qx).numpy().ravel(), rtol=1e-5)
    # Its speed (issue #4: under 50 ms per user) is measured by benchmarks/user_adaptation.py.
    with pytest.raises(ValueError, match="Received: steps=-1"):
        UserAdapter(learner, steps=-1)


def test_recommend_ranks_and_keeps_bad_rows(setup):
    _, features, learner = setup
    ratings = pd.DataFrame({"item_id": ["1", "2", "999", "x", "3"], "rating": ["5", "4", "3", "4", "9"]})
    candidates = pd.DataFrame({"item": ["4", "5", "6", "7", "4", "12345"]})
    table = recommend(learner, features, ratings, candidates, top_k=2, age=30, gender="F")
    ranked = table[table["error"].isna()]
    assert ranked["rank"].tolist() == [1, 2]
    assert ranked["predicted_rating"].is_monotonic_decreasing
    assert set(ranked["item"]) <= {4, 5, 6, 7}
    errors = table[table["error"].notna()]
    messages = " | ".join(errors["error"])
    assert "unknown item id 999" in messages and "'x' is not an integer" in messages
    assert "rating '9' is not a number in [1, 5]" in messages
    assert "unknown item id 12345" in messages and "candidate repeated" in messages
    assert len(errors) == 5
    # Default candidates: every known item not rated.
    all_items = recommend(learner, features, ratings, top_k=100)
    scored = all_items[all_items["error"].isna()]["item"]
    assert len(scored) == 30 - 2 and not {1, 2} & set(scored)


def test_recommend_errors(setup, tmp_path):
    _, features, learner = setup
    with pytest.raises(ValueError, match="no `rating` column"):
        recommend(learner, features, pd.DataFrame({"item": [1]}))
    with pytest.raises(ValueError, match="no item column"):
        recommend(learner, features, pd.DataFrame({"film": [1], "rating": [3]}))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        recommend(learner, features, tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="Received: top_k=0"):
        recommend(learner, features, pd.DataFrame({"item": [1], "rating": [3]}), top_k=0)


def test_saved_model_round_trip_and_compatibility(setup, tmp_path):
    data, features, learner = setup
    from fewshot.recipes.personalization import save_learner

    save_learner(learner, tmp_path / "maml.keras", steps=2, inner_lr=None)
    loaded, chosen = load_recommender(tmp_path / "maml.keras")
    assert chosen == {"steps": 2, "inner_lr": None}
    check_compatible(loaded, features)
    x = features.encode([1, 2, 3], [0, 0, 0])
    np.testing.assert_allclose(loaded.backbone(x).numpy(), learner.backbone(x).numpy(), rtol=1e-6)
    smaller = RatingFeatures.from_movielens(data)
    smaller.num_items = 5
    with pytest.raises(ValueError, match="does not match this data folder"):
        check_compatible(loaded, smaller)
    with pytest.raises(FileNotFoundError, match="No model at"):
        load_recommender(tmp_path / "missing.keras")
    sinusoid = fewshot.MAML(fewshot.models.mlp(input_shape=(1,), hidden=(4,), outputs=1))
    sinusoid.compile(loss="mse")
    sinusoid.save(tmp_path / "sinusoid.keras")
    other, _ = load_recommender(tmp_path / "sinusoid.keras")
    with pytest.raises(ValueError, match="not a personalisation model: its network has no FeatureEmbedding"):
        check_compatible(other, features)
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(tmp_path / "plain.keras")
    with pytest.raises(ValueError, match="is not a personalisation model.*Received: a Sequential"):
        load_recommender(tmp_path / "plain.keras")
    (tmp_path / "text.keras").write_text("not a model")
    with pytest.raises(ValueError, match="text.keras"):
        load_recommender(tmp_path / "text.keras")


def test_item_ids_beyond_int64_are_error_rows(setup):
    _, features, learner = setup
    ratings = pd.DataFrame({"item": ["1", "99999999999999999999", "1e20"], "rating": ["5", "4", "3"]})
    candidates = pd.DataFrame({"item": ["4", "1e19"]})
    table = recommend(learner, features, ratings, candidates, top_k=5)
    errors = table[table["error"].notna()]
    assert len(errors) == 3 and table["error"].isna().sum() == 1


def test_an_item_rated_twice_counts_once(setup):
    _, features, learner = setup
    once = pd.DataFrame({"item": ["1", "2"], "rating": ["5", "2"]})
    twice = pd.DataFrame({"item": ["1", "2", "1"], "rating": ["5", "2", "1"]})
    candidates = pd.DataFrame({"item": ["4", "5"]})
    expected = recommend(learner, features, once, candidates, top_k=2)
    table = recommend(learner, features, twice, candidates, top_k=2)
    ranked = table[table["error"].isna()]
    np.testing.assert_allclose(ranked["predicted_rating"], expected["predicted_rating"], rtol=1e-6)
    assert table["error"].dropna().tolist() == ["rating ignored: item 1 is rated again (the first rating is used)"]
