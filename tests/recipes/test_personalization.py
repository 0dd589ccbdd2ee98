import json
import os
import pathlib

import pytest

from fewshot.cli import main
from fewshot.datasets.movielens import write_tiny_movielens

RECIPE = pathlib.Path(__file__).parents[2] / "recipes" / "personalization"
REAL_DATA = pathlib.Path(os.environ.get("FEWSHOT_MOVIELENS_DIR", "/work/shared/data/movielens-100k"))


def _tiny_recipe(tmp_path):
    text = (RECIPE / "recipe.toml").read_text()
    for old, new in [
        ("embedding_dim = 32", "embedding_dim = 4"),
        ("hidden = [64, 64]", "hidden = [8]"),
        ("meta_batch_size = 32", "meta_batch_size = 4"),
        ("first_order = false", "first_order = true"),  # traces much faster
        ("batches_per_epoch = 50", "batches_per_epoch = 2"),
        ("max_epochs = 200", "max_epochs = 2"),
        ("finetune_steps = [1, 5, 10]", "finetune_steps = [1]"),
        ("finetune_lrs = [0.003, 0.01, 0.03, 0.1]", "finetune_lrs = [0.01, 0.1]"),
        ("meta_step_factors = [1, 2]", "meta_step_factors = [1]"),
        ("inner_steps = 5", "inner_steps = 2"),
        ("support_limits = [0, 1, 2, 5, 10, 20, 40, 90]", "support_limits = [0, 5, 90]"),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    # One member per method unless a test asks for a seed ensemble.
    text = "\n".join(line for line in text.splitlines() if not line.startswith("ensemble_seeds"))
    folder = tmp_path / "recipe"
    folder.mkdir()
    (folder / "recipe.toml").write_text(text)
    return folder


def test_recipe_end_to_end_then_recommend(tmp_path, capsys):
    data = write_tiny_movielens(tmp_path / "data", num_users=30, num_items=40)
    out = tmp_path / "out"
    code = main(["run", str(_tiny_recipe(tmp_path)), "--data-dir", data, "--out", str(out),
                 "--quiet", "--methods", "maml"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["recipe"] == "personalization"
    methods = ["maml", "pretrained_finetune", "global_mean", "item_mean", "user_mean", "bias"]
    assert list(results["metrics"]) == methods
    assert results["config"]["chosen_on_validation"]["maml"]["steps"] == 2
    for values in results["metrics"].values():
        assert {"mae", "mae_ci95", "rmse", "rmse_ci95", "ndcg3", "ndcg3_ci95"} <= set(values)
        assert 0 <= values["mae"] < 4 and 0 < values["ndcg3"] <= 1
    config = results["config"]
    assert config["users"] == {"train": 21, "validation": 3, "test": 6}
    assert config["mae_by_support_size"]["support_limits"] == [0, 5, 90]
    assert config["adapt_ms_per_user"]["maml"] > 0
    assert (out / "mae_vs_support.png").stat().st_size > 1000
    assert "| maml |" in (out / "results.md").read_text()

    ratings = tmp_path / "me.csv"
    ratings.write_text("item,rating\n1,5\n2,4\n3,1\n999,5\n")
    candidates = tmp_path / "cands.csv"
    candidates.write_text("item\n4\n5\n6\n888\n")
    capsys.readouterr()
    code = main(["recommend", "--model", str(out / "models" / "maml.keras"), "--ratings", str(ratings),
                 "--candidates", str(candidates), "--top-k", "2", "--data-dir", data])
    printed = capsys.readouterr().out
    assert code == 0
    assert "unknown item id 999" in printed and "unknown item id 888" in printed
    assert "predicted_rating" in printed


def test_unknown_method_is_one_clear_line(tmp_path, capsys):
    code = main(["run", str(RECIPE), "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path),
                 "--methods", "maml,melu9"])
    assert code == 2
    assert "unknown ['melu9']" in capsys.readouterr().err


def test_missing_data_dir_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FEWSHOT_MOVIELENS_DIR", raising=False)
    code = main(["run", str(RECIPE), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "No MovieLens data given: pass --data-dir DIR" in capsys.readouterr().err
    code = main(["run", str(RECIPE), "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "x")])
    assert code == 2
    assert "MovieLens folder not found" in capsys.readouterr().err


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="real MovieLens-100K not present (set FEWSHOT_MOVIELENS_DIR)")
def test_real_100k_protocol_counts():
    from fewshot.datasets import load_movielens
    from fewshot.datasets.user_tasks import user_tasks

    tasks = user_tasks(load_movielens(REAL_DATA))
    assert len(tasks) == 582  # ANCHORS: 582 eligible users
    train, val, test = tasks.split(seed=0)
    assert (len(train), len(val), len(test)) == (407, 59, 116)


def test_build_learner_reads_the_method_table(tmp_path):
    from fewshot.algorithms.meta_sgd import MetaSGD
    from fewshot.datasets import load_movielens
    from fewshot.datasets.user_tasks import RatingFeatures
    from fewshot.recipes.config import load_recipe
    from fewshot.recipes.personalization import build_learner, recipe_settings

    features = RatingFeatures.from_movielens(
        load_movielens(write_tiny_movielens(tmp_path, num_users=4, num_items=10, ratings_per_user=(2, 3)))
    )
    settings = recipe_settings(load_recipe(RECIPE))
    learner = build_learner("meta_sgd", features, settings, 3.5)
    assert isinstance(learner, MetaSGD)
    assert learner.adapt_layers == ["decision_1", "decision_2", "head"]
    assert not learner.backbone.get_layer("embedding").trainable  # freeze = ["embedding"]
    anil = build_learner("anil", features, settings, 3.5)
    assert anil.adapt_layers == ["head"] and anil.inner_lr == 0.01 and anil.inner_steps == 2
    settings["method_settings"]["odd"] = {"algorithm": "reptile9"}
    with pytest.raises(ValueError, match="Received: algorithm='reptile9'"):
        build_learner("odd", features, settings, 3.5)


def test_a_methods_support_size_reaches_its_episodes(tmp_path):
    from fewshot.datasets import load_movielens
    from fewshot.datasets.user_tasks import RatingFeatures, user_tasks
    from fewshot.recipes.config import load_recipe
    from fewshot.recipes.personalization import build_learner, recipe_settings, train_meta

    data = load_movielens(write_tiny_movielens(tmp_path, num_users=12, num_items=30))
    features = RatingFeatures.from_movielens(data)
    tasks = user_tasks(data, features)
    settings = recipe_settings(load_recipe(_tiny_recipe(tmp_path)))
    assert settings["train"]["support_size"] == 10
    settings["method_settings"]["maml"]["support_size"] = "most"
    learner = build_learner("maml", features, settings, 3.5)
    with pytest.raises(ValueError, match="Received: support_size='most'"):
        train_meta(learner, tasks, tasks, settings, tmp_path / "backup")


def test_support_shrinkage_from_the_method_table_and_validation_only(tmp_path, capsys):
    from fewshot.datasets import load_movielens
    from fewshot.datasets.user_tasks import RatingFeatures
    from fewshot.recipes.config import load_recipe
    from fewshot.recipes.personalization import build_learner, recipe_settings

    recipe = _tiny_recipe(tmp_path)
    lines = (recipe / "recipe.toml").read_text().splitlines()
    text = "\n".join(l for l in lines if not l.startswith("support_shrinkage"))
    (recipe / "recipe.toml").write_text(
        text.replace("[methods.maml]", "[methods.maml]\nsupport_shrinkage = 7")
    )
    settings = recipe_settings(load_recipe(recipe))
    features = RatingFeatures.from_movielens(
        load_movielens(write_tiny_movielens(tmp_path / "f", num_users=4, num_items=10,
                                            ratings_per_user=(2, 3)))
    )
    assert build_learner("maml", features, settings, 3.5).support_shrinkage == 7.0
    assert build_learner("anil", features, settings, 3.5).support_shrinkage == 0.0
    settings["method_settings"]["anil"]["support_shrinkage"] = -2
    with pytest.raises(ValueError, match="Received: support_shrinkage=-2"):
        build_learner("anil", features, settings, 3.5)

    data = write_tiny_movielens(tmp_path / "data", num_users=30, num_items=40)
    out = tmp_path / "out"
    assert main(["run", str(recipe), "--data-dir", data, "--out", str(out), "--quiet",
                 "--methods", "maml", "--validation-only"]) == 0
    assert not (out / "results.json").exists()  # no test user scored
    summary = json.loads((out / "validation.json").read_text())
    assert summary["chosen_on_validation"]["maml"]["support_shrinkage"] == 7.0
    assert summary["val_mae_by_support_size"]["support_limits"] == [0, 5, 90]
    assert len(summary["val_mae_by_support_size"]["maml"]) == 3
    assert "maml: validation MAE" in capsys.readouterr().out
