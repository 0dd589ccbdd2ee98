import json
import types

import numpy as np
import pandas as pd
import pytest
from molecule_fixtures import TASKS, write_molecule_csv

from fewshot.cli import main
from fewshot.recipes import drug_property

# A tiny version of recipes/drug_property: small episodes and networks, one
# epoch, so the whole runner (loader, featurisation, every method, results,
# plot, saved models, predict-molecules) runs in seconds on the test CSV.
TINY_RECIPE = """
runner = "drug_property"
seed = 0
refit = true
methods = ["protonet", "maml", "anil", "pretrained_finetune", "random_forest", "knn", "ensemble"]
[ensemble]
size = "validation"
[data]
validation_tasks = 1
[features]
kind = "morgan_count"
radius = 2
size = 128
[eval]
shots = [3, 1]
draws = 2
validation_draws = 1
validation_max_query = 20
[protonet]
hidden = [16]
embedding = 8
dropout = 0.1
lr = 0.001
shots = 2
queries = 3
meta_batch_size = 2
batches_per_epoch = 2
epochs = 2
patience = 1
time_budget_s = 60
[maml]
hidden = [16]
inner_lr = 0.1
inner_steps = 1
lr = 0.001
shots = 2
queries = 3
meta_batch_size = 2
batches_per_epoch = 2
epochs = 1
time_budget_s = 60
[anil]
hidden = [16]
inner_lr = 0.1
inner_steps = 2
lr = 0.001
shots = 2
queries = 3
meta_batch_size = 2
batches_per_epoch = 2
epochs = 1
time_budget_s = 60
[pretrained_finetune]
hidden = [16]
embedding = 8
lr = 0.001
batch_size = 32
epochs = 2
time_budget_s = 60
head_init = "prior"
finetune_steps = 2
finetune_lr = 0.001
finetune_grid = [[0, 0.001], [3, 0.001]]
[random_forest]
n_estimators = 10
[knn]
k_10shot = 3
k_1shot = 1
"""


def test_recipe_runs_end_to_end_and_models_predict(tmp_path, capsys):
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "recipe.toml").write_text(TINY_RECIPE)
    data = write_molecule_csv(tmp_path / "toy.csv")
    out = tmp_path / "out"
    code = main(["run", str(recipe), "--data", str(data), "--out", str(out), "--test-tasks",
                 "last:2", "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["recipe"] == "drug_property"
    assert results["config"]["split"]["test"] == ["nitrogen", "ring"]
    assert results["config"]["invalid_smiles"] == 2
    methods = ["protonet", "maml", "anil", "pretrained_finetune", "random_forest", "knn", "ensemble"]
    assert list(results["metrics"]) == methods
    # The ensemble's size was chosen on the validation draws of the 4 networks.
    ensemble = results["config"]["ensemble"]
    by_size = {int(k): v for k, v in ensemble["validation_roc_auc_by_size"].items()}
    assert sorted(by_size) == [2, 3, 4]
    best = max(by_size, key=lambda k: (by_size[k], -k))
    ranked = sorted(results["config"]["validation_roc_auc"].items(), key=lambda kv: -kv[1])
    assert ensemble["members"] == [m for m, _ in ranked[:best]]
    for method in methods:
        values = results["metrics"][method]
        for name in ("roc_auc_3shot", "delta_auprc_3shot", "roc_auc_1shot", "delta_auprc_1shot"):
            assert name in values and name + "_ci95" in values
        assert 0.0 <= values["roc_auc_3shot"] <= 100.0
    assert (out / "roc.png").stat().st_size > 1000
    assert "| protonet |" in (out / "results.md").read_text()
    assert "hello world" in (out / "invalid_smiles.csv").read_text()

    # The saved models rank new molecules.
    pd.DataFrame({"smiles": ["c1ccncc1", "CCO", "Nc1ccccc1", "CCCC"], "label": [1, 0, 1, 0]}).to_csv(
        tmp_path / "support.csv", index=False)
    pd.DataFrame({"smiles": ["CCN", "oops(", "c1ccccc1N"]}).to_csv(tmp_path / "query.csv", index=False)
    for method in ("protonet", "maml", "pretrained_finetune"):
        predictions = tmp_path / f"{method}.csv"
        assert main(["predict-molecules", "--model", str(out / "models" / method), "--support",
                     str(tmp_path / "support.csv"), "--query", str(tmp_path / "query.csv"),
                     "--out", str(predictions)]) == 0
        table = pd.read_csv(predictions)
        assert table["valid"].tolist() == [True, False, True]
        assert table["score"].notna().tolist() == [True, False, True]


def test_unknown_method_and_bad_test_tasks_are_one_line_errors(tmp_path, capsys):
    data = write_molecule_csv(tmp_path / "toy.csv")
    code = main(["run", "recipes/drug_property", "--data", str(data), "--out", str(tmp_path / "o"),
                 "--methods", "protonet,gnn", "--test-tasks", "last:2"])
    assert code == 2
    assert "unknown ['gnn']" in capsys.readouterr().err
    code = main(["run", "recipes/drug_property", "--data", str(data), "--out", str(tmp_path / "o"),
                 "--methods", "knn", "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    assert "required for data other than Tox21" in capsys.readouterr().err


def test_evaluation_tasks_too_small_for_the_shots_fail_before_training(tmp_path, capsys):
    data = write_molecule_csv(tmp_path / "toy.csv")
    common = ["--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--methods", "knn"]
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "recipe.toml").write_text(TINY_RECIPE.replace("shots = [3, 1]", "shots = [500, 1]"))
    code = main(["run", str(recipe), *common, "--out", str(tmp_path / "o"), "--test-tasks", "last:2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Invalid value received for `validation_tasks`: the validation task" in err
    assert "too few for supports of 500 of each" in err
    assert not (tmp_path / "o" / "results.json").exists()
    everything = ",".join(TASKS)
    code = main(["run", str(recipe), *common, "--out", str(tmp_path / "o"), "--test-tasks", everything])
    assert code == 2
    assert "it names every task, so none is left to train on" in capsys.readouterr().err


TINY_GIN_RECIPE = """
runner = "drug_property"
seed = 0
refit = true
methods = ["protonet_gin", "anil_gin", "pretrained_finetune_gin", "knn", "ensemble"]
[ensemble]
size = 2
[data]
validation_tasks = 1
[features]
kind = "morgan_count"
size = 64
[graph_features]
max_atoms = "auto"
max_degree = "auto"
fingerprint_size = 32
[eval]
shots = [3]
draws = 2
validation_draws = 1
validation_max_query = 20
[protonet_gin]
units = 8
depth = 2
embedding = 4
fingerprint_units = 4
edge_features = true
lr = 0.001
shots = 2
queries = 3
meta_batch_size = 2
batches_per_epoch = 2
epochs = 1
time_budget_s = 60
[anil_gin]
units = 8
depth = 1
inner_lr = 0.1
inner_steps = 1
lr = 0.001
shots = 2
queries = 3
meta_batch_size = 2
batches_per_epoch = 1
epochs = 1
time_budget_s = 60
[maml_gin]
units = 8
depth = 1
inner_lr = 0.1
inner_steps = 1
first_order = true
lr = 0.001
shots = 2
queries = 3
meta_batch_size = 2
batches_per_epoch = 1
epochs = 1
time_budget_s = 60
[pretrained_finetune_gin]
units = 8
depth = 2
embedding = 4
fingerprint_units = 4
lr = 0.001
batch_size = 32
epochs = 1
time_budget_s = 60
head_init = "prior"
finetune_steps = 2
finetune_lr = 0.001
[knn]
k_10shot = 3
k_1shot = 1
"""


def _run_gin_recipe(tmp_path, methods, refit):
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    text = TINY_GIN_RECIPE.replace("refit = true", f"refit = {str(refit).lower()}")
    (recipe / "recipe.toml").write_text(text)
    data = write_molecule_csv(tmp_path / "toy.csv")
    out = tmp_path / "out"
    code = main(["run", str(recipe), "--data", str(data), "--out", str(out), "--test-tasks",
                 "last:2", "--cache-dir", str(tmp_path / "cache"), "--quiet", "--methods", methods])
    assert code == 0
    return out, json.loads((out / "results.json").read_text())


def _check_gin_models_predict(tmp_path, out, methods, graph):
    pd.DataFrame({"smiles": ["c1ccncc1", "CCO", "Nc1ccccc1", "CCCC"], "label": [1, 0, 1, 0]}).to_csv(
        tmp_path / "support.csv", index=False)
    # The last query molecule is larger than the model's max_atoms: flagged, not dropped.
    pd.DataFrame({"smiles": ["CCN", "oops(", "c1ccccc1N", "C" * 30]}).to_csv(
        tmp_path / "query.csv", index=False)
    for method in methods:
        saved = json.loads((out / "models" / method / "featurizer.json").read_text())
        assert saved["featurizer"] == graph
        predictions = tmp_path / f"{method}.csv"
        assert main(["predict-molecules", "--model", str(out / "models" / method), "--support",
                     str(tmp_path / "support.csv"), "--query", str(tmp_path / "query.csv"),
                     "--out", str(predictions)]) == 0
        table = pd.read_csv(predictions)
        assert table["valid"].tolist() == [True, False, True, False]
        assert table["score"].notna().tolist() == [True, False, True, False]
        assert table["error"].tolist()[3] == "the molecule has 30 heavy atoms, more than max_atoms=23"


def test_a_gin_method_runs_on_the_same_molecules_and_its_model_predicts(tmp_path):
    out, results = _run_gin_recipe(tmp_path, "protonet_gin,knn", refit=False)
    assert list(results["metrics"]) == ["protonet_gin", "knn"]
    # max_atoms from the data: the largest test molecule (warfarin, 23 heavy atoms).
    graph = results["config"]["graph_features"]
    assert graph["kind"] == "graph" and graph["max_atoms"] == 23 and graph["max_degree"] == 4
    assert results["config"]["invalid_smiles"] == 2  # only the unparsable rows
    for values in results["metrics"].values():
        assert 0.0 <= values["roc_auc_3shot"] <= 100.0
    _check_gin_models_predict(tmp_path, out, ["protonet_gin"], graph)


@pytest.mark.slow
def test_every_gin_method_with_refit_and_ensemble(tmp_path):
    methods = ["protonet_gin", "anil_gin", "maml_gin", "pretrained_finetune_gin"]
    out, results = _run_gin_recipe(tmp_path, ",".join(methods + ["knn", "ensemble"]), refit=True)
    assert list(results["metrics"]) == methods + ["knn", "ensemble"]
    _check_gin_models_predict(tmp_path, out, methods, results["config"]["graph_features"])


def test_graph_limits_smaller_than_the_data_are_a_clear_error(tmp_path):
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "recipe.toml").write_text(TINY_GIN_RECIPE.replace('max_atoms = "auto"', "max_atoms = 20"))
    data = write_molecule_csv(tmp_path / "toy.csv")
    with pytest.raises(ValueError, match=r"'CC\(=O\)CC\(c1ccccc1\)c1c\(O\)c2ccccc2oc1=O' \(the molecule "
                                         r"has 23 heavy atoms, more than max_atoms=20\)"):
        from fewshot.recipes import drug_property

        drug_property.run(
            {"runner": "drug_property", **__import__("tomllib").loads(
                (recipe / "recipe.toml").read_text())},
            type("Args", (), dict(out=str(tmp_path / "o"), quiet=True, data=str(data), data_dir=None,
                                  test_tasks="last:2", validation_tasks=None, methods="protonet_gin",
                                  draws=None, budget_scale=1.0, descriptors=False,
                                  cache_dir=str(tmp_path / "cache")))(),
        )


def _validation_draws(rng, noise, y_true):
    """One network's validation draws: {shots: [(y_true, scores, task)]}."""
    return {shots: [(y, y + rng.normal(scale=noise, size=len(y)), task) for task, y in y_true]
            for shots in (10, 1)}


def test_ensemble_size_is_chosen_on_the_validation_draws():
    rng = np.random.default_rng(0)
    y_true = [(task, (rng.random(200) < 0.3).astype(float)) for task in (0, 1) for _ in range(4)]
    validation = {"good": 80.0, "fair": 75.0, "poor": 70.0}
    # One informative network and two uninformative ones: averaging only hurts.
    curves = {"good": _validation_draws(rng, 0.5, y_true),
              "fair": _validation_draws(rng, 50.0, y_true), "poor": _validation_draws(rng, 50.0, y_true)}
    settings = {"ensemble": {"size": "validation"}}
    assert drug_property._ensemble_members(settings, validation, curves, ["a", "b"]) == ["good", "fair"]
    by_size = settings["ensemble"]["validation_roc_auc_by_size"]
    assert sorted(by_size) == [2, 3] and by_size[2] > by_size[3]
    # Three networks with independent errors: the three together beat any two.
    curves = {name: _validation_draws(rng, 1.0, y_true) for name in validation}
    assert drug_property._ensemble_members(settings, validation, curves, ["a", "b"]) == [
        "good", "fair", "poor"]
    assert settings["ensemble"]["validation_roc_auc_by_size"][3] > settings["ensemble"][
        "validation_roc_auc_by_size"][2]
    # A fixed size takes the best networks by their own validation score.
    assert drug_property._ensemble_members({"ensemble": {"size": 2}}, validation, curves, ["a", "b"]) == [
        "good", "fair"]


@pytest.mark.parametrize("size", [1, "best", 2.5, True])
def test_a_bad_ensemble_size_is_a_clear_error(size):
    args = types.SimpleNamespace(test_tasks=None, validation_tasks=None, descriptors=False, draws=None,
                                 methods=None, budget_scale=1.0)
    with pytest.raises(ValueError, match=r"\[ensemble\] size: expected an integer >= 2 or \"validation\". "
                                         rf"Received: size={size!r}"):
        drug_property._settings({"ensemble": {"size": size}}, args)
