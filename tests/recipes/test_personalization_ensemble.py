"""Seed ensembles in the personalisation recipe (`ensemble_seeds`)."""

import argparse
import json
import re

import numpy as np
import pytest

from fewshot.cli import main
from fewshot.datasets import load_movielens
from fewshot.datasets.movielens import write_tiny_movielens
from fewshot.datasets.user_tasks import RatingFeatures, user_tasks
from fewshot.recipes.config import load_recipe
from fewshot.recipes.personalization import _settings, train_member
from fewshot.recsys.adapter import UserAdapter
from fewshot.recsys.evaluation import user_scores
from fewshot.recsys.recommend import load_adapter, load_recommender

from tests.recipes.test_personalization import _tiny_recipe

NO_ARGS = argparse.Namespace(methods=None, time_budget=None)


def _with(recipe, table, line):
    """Adds `line` to the table `[table]` of a recipe folder's recipe.toml."""
    path = recipe / "recipe.toml"
    header = re.compile(rf"^\[{re.escape(table)}\].*$", re.M)
    text, count = header.subn(lambda m: f"{m.group(0)}\n{line}", path.read_text(), count=1)
    assert count == 1, table
    path.write_text(text)
    return recipe


def test_member_0_is_the_single_model(tmp_path):
    # Member i trains with seed + i, so an ensemble's member 0 is today's
    # model bit for bit (and N = 1 is that model alone).
    data = load_movielens(write_tiny_movielens(tmp_path / "data", num_users=12, num_items=30))
    features = RatingFeatures.from_movielens(data)
    tasks = user_tasks(data, features)
    single = _settings(load_recipe(_tiny_recipe(tmp_path)), NO_ARGS)
    assert set(single["ensemble_seeds"].values()) == {1}
    (tmp_path / "b").mkdir()
    pair = _settings(load_recipe(_with(_tiny_recipe(tmp_path / "b"), "train", "ensemble_seeds = 2")), NO_ARGS)
    assert pair["ensemble_seeds"]["maml_scratch"] == 2
    weights = []
    for settings, out in [(single, tmp_path / "o1"), (pair, tmp_path / "o2")]:
        learner = train_member("maml_scratch", 0, features, tasks, tasks, settings, None, out)
        weights.append(learner.backbone.get_weights())
    for a, b in zip(weights[0], weights[1]):
        np.testing.assert_array_equal(a, b)


def test_an_ensemble_of_two_is_the_mean_of_its_members_in_the_run_and_in_recommend(tmp_path, capsys):
    recipe = _with(_tiny_recipe(tmp_path), "methods.maml", "ensemble_seeds = 2")
    data = write_tiny_movielens(tmp_path / "data", num_users=30, num_items=40)
    out = tmp_path / "out"
    assert main(["run", str(recipe), "--data-dir", data, "--out", str(out), "--quiet",
                 "--methods", "maml"]) == 0
    models = out / "models"
    assert (models / "pretrained_finetune.keras").is_file()  # N = 1: the layout of today
    assert sorted(p.name for p in (models / "maml").iterdir()) == [
        "ensemble.json", "member_0.json", "member_0.keras", "member_1.json", "member_1.keras"]
    results = json.loads((out / "results.json").read_text())
    chosen = results["config"]["chosen_on_validation"]["maml"]
    assert chosen["ensemble_seeds"] == 2 and [m["seed"] for m in chosen["members"]] == [0, 1]
    assert chosen["by_members"]["mean"][0] == pytest.approx(chosen["members"][0]["val_mae"])
    assert chosen["val_mae"] == chosen["by_members"]["mean"][1]

    # The row's predictions are the mean of the members' own predictions.
    loaded = RatingFeatures.from_movielens(load_movielens(data))
    _, _, test = user_tasks(load_movielens(data), loaded).split((0.7, 0.1, 0.2), seed=0)
    _, ensemble = load_adapter(models / "maml")
    members = []
    for i in (0, 1):
        learner, setting = load_recommender(models / "maml" / f"member_{i}.keras")
        members.append(UserAdapter(learner, setting["steps"], setting["inner_lr"], clip=(1.0, 5.0)))
    got = ensemble.predict_tasks(test)
    for u, pred in enumerate(got):
        each = [m(test.support_x[u], test.support_y[u], test.query_x[u]) for m in members]
        np.testing.assert_allclose(pred, (each[0] + each[1]) / 2, rtol=1e-5)
        assert np.abs(each[0] - each[1]).max() > 1e-4  # seeds 0 and 1 train different members
    mae = user_scores(test.query_y, got)["mae"].mean()
    assert results["metrics"]["maml"]["mae"] == pytest.approx(mae, abs=1e-4)

    # `fewshot recommend` serves the ensemble: a folder, or --model repeated.
    ratings = tmp_path / "me.csv"
    ratings.write_text("item,rating\n1,5\n2,4\n3,1\n")
    printed = []
    for model_args in (["--model", str(models / "maml")],
                       ["--model", str(models / "maml" / "member_0.keras"),
                        "--model", str(models / "maml" / "member_1.keras")]):
        capsys.readouterr()
        assert main(["recommend", *model_args, "--ratings", str(ratings), "--top-k", "3",
                     "--data-dir", data]) == 0
        printed.append(capsys.readouterr().out.splitlines()[:4])
    assert printed[0] == printed[1] and "predicted_rating" in printed[0][0]


@pytest.mark.parametrize("table, line, message", [
    ("train", "ensemble_seeds = 0", "`train.ensemble_seeds`. Expected a positive integer"),
    ("methods.maml", "ensemble_seeds = 2.5", "Received: ensemble_seeds=2.5"),
    ("pretrain", "ensemble_seeds = true", "Received: ensemble_seeds=True"),
    ("train", 'ensemble_combine = "mode"', "Received: ensemble_combine='mode'"),
])
def test_bad_ensemble_settings_are_named(tmp_path, table, line, message):
    recipe = _with(_tiny_recipe(tmp_path), table, line)
    with pytest.raises(ValueError, match=message):
        _settings(load_recipe(recipe), NO_ARGS)


def test_a_bad_ensemble_size_is_one_clear_line(tmp_path, capsys):
    recipe = _with(_tiny_recipe(tmp_path), "methods.maml", 'ensemble_seeds = "3"')
    code = main(["run", str(recipe), "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path)])
    assert code == 2
    assert "Received: ensemble_seeds='3'" in capsys.readouterr().err
