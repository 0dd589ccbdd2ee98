"""EnsembleAdapter combines its members' adapted predictions; folders of members load as one."""

import keras
import numpy as np
import pytest

import fewshot
from fewshot.datasets import load_movielens
from fewshot.datasets.movielens import write_tiny_movielens
from fewshot.datasets.user_tasks import RatingFeatures, user_tasks
from fewshot.recsys.adapter import UserAdapter
from fewshot.recsys.ensemble import EnsembleAdapter
from fewshot.recsys.recommend import load_adapter, model_files


def _members(count, steps=2):
    adapters = []
    for seed in range(count):
        keras.utils.set_random_seed(seed)
        learner = fewshot.MAML(fewshot.models.mlp((3,), (8,), 1), inner_lr=0.1, inner_steps=steps)
        learner.compile(loss="mae")
        adapters.append(UserAdapter(learner, clip=(1.0, 5.0)))
    return adapters


def test_mean_and_median_of_the_members():
    rng = np.random.default_rng(0)
    sx, sy, qx = rng.normal(size=(5, 3)), rng.uniform(1, 5, 5), rng.normal(size=(4, 3))
    members = _members(3)
    each = np.stack([m(sx, sy, qx) for m in members])
    assert EnsembleAdapter(members).member_predictions(sx, sy, qx).shape == (3, 4)
    np.testing.assert_allclose(EnsembleAdapter(members)(sx, sy, qx), each.mean(0), rtol=1e-6)
    np.testing.assert_allclose(EnsembleAdapter(members, "median")(sx, sy, qx), np.median(each, 0))
    # One member is that member.
    np.testing.assert_allclose(EnsembleAdapter(members[:1])(sx, sy, qx), each[0])


def test_predict_tasks_keeps_the_last_support_ratings(tmp_path):
    data = load_movielens(write_tiny_movielens(tmp_path, num_users=12, num_items=30))
    features = RatingFeatures.from_movielens(data)
    tasks = user_tasks(data, features)
    adapters = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        backbone = fewshot.models.recommender(features.vocabulary_sizes(), len(features.genres), 4, (8,))
        learner = fewshot.MAML(backbone, inner_lr=0.05, inner_steps=2)
        learner.compile(loss="mse")
        adapters.append(UserAdapter(learner))
    ensemble = EnsembleAdapter(adapters)
    for limit in (None, 2):
        got = ensemble.predict_tasks(tasks, limit)
        each = [a.predict_tasks(tasks, limit) for a in adapters]
        assert len(got) == len(tasks)
        for u, pred in enumerate(got):
            np.testing.assert_allclose(pred, (each[0][u] + each[1][u]) / 2, rtol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="Received: combine='mode'"):
        EnsembleAdapter(_members(1), "mode")
    with pytest.raises(ValueError, match="Received: adapters=\\[\\]"):
        EnsembleAdapter([])


def test_a_folder_of_members_loads_as_an_ensemble(tmp_path):
    from fewshot.recipes.personalization import save_learner

    for index in (0, 2, 10):  # member order is numeric, not by name
        keras.utils.set_random_seed(index)
        learner = fewshot.MAML(fewshot.models.mlp((3,), (8,), 1), inner_lr=0.1)
        learner.compile(loss="mae")
        save_learner(learner, tmp_path / f"member_{index}.keras", steps=index % 3 + 1, inner_lr=None)
    assert [p.name for p in model_files(tmp_path)] == ["member_0.keras", "member_2.keras", "member_10.keras"]
    learners, ensemble = load_adapter(tmp_path)
    assert len(learners) == 3 and [a.steps for a in ensemble.adapters] == [1, 3, 2]
    _, same = load_adapter([tmp_path / "member_0.keras", tmp_path / "member_2.keras",
                            tmp_path / "member_10.keras"])
    x, y = np.ones((4, 3), "float32"), np.full(4, 3.0, "float32")
    np.testing.assert_allclose(ensemble(x, y, x), same(x, y, x))
    _, single = load_adapter(tmp_path / "member_2.keras")
    assert isinstance(single, UserAdapter) and single.steps == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no member_\\*.keras files"):
        load_adapter(tmp_path / "empty")


def test_a_folder_with_a_record_loads_the_members_it_lists(tmp_path):
    """The recipe's ensemble.json decides the members and how they combine."""
    from fewshot.model_catalog import write_ensemble_record
    from fewshot.recipes.personalization import save_learner

    for index in range(3):
        learner = fewshot.MAML(fewshot.models.mlp((3,), (8,), 1), inner_lr=0.1)
        learner.compile(loss="mae")
        save_learner(learner, tmp_path / f"member_{index}.keras", steps=index + 1, inner_lr=None)
    write_ensemble_record(tmp_path, ["member_2.keras", "member_0.keras"], "median")
    assert [p.name for p in model_files(tmp_path)] == ["member_2.keras", "member_0.keras"]
    _, ensemble = load_adapter(tmp_path)
    assert [a.steps for a in ensemble.adapters] == [3, 1] and ensemble.combine == "median"
    (tmp_path / "ensemble.json").write_text('{"members": []}')
    with pytest.raises(ValueError, match=r"ensemble.json.*Received: members=\[\]"):
        load_adapter(tmp_path)
