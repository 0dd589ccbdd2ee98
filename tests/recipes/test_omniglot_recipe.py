"""The Omniglot recipe end to end on tiny zips: results schema, resumption, CLI errors."""

import csv
import json
import pathlib
import sys

import pytest

from fewshot import cli

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "datasets"))
from test_omniglot import write_tiny_omniglot  # noqa: E402

RECIPE = """
runner = "omniglot"
seed = 0
[data]
train_characters = 10
validation_characters = 3
[train]
meta_batch_size = 2
batches_per_epoch = 2
epochs = 1
train_queries = 2
outer_lr = 0.001
inner_lr = 0.4
inner_steps = 1
vectorize = false
tasks_per_chunk = 1
[eval]
eval_steps = 1
eval_queries = 3
eval_batch = 4
validation_episodes = 4
test_episodes = 8
[protonet]
train_ways = 4
"""


@pytest.fixture
def setup(tmp_path):
    data = write_tiny_omniglot(
        tmp_path / "data", alphabets=(("Alpha", 6), ("Beta", 4)), evaluation=(("Gamma", 5),), drawings=8
    )
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE)
    return recipe, data, tmp_path / "out"


def _run(recipe, data, out, *extra):
    return cli.main(
        ["run", str(recipe), "--out", str(out), "--data-dir", str(data), "--quiet",
         "--cache-dir", str(out.parent / "cache"), "--ways", "3", "--shots", "1", *extra]
    )


def test_protonet_cell_writes_results_and_resumes(setup):
    recipe, data, out = setup
    assert _run(recipe, data, out, "--algorithm", "protonet", "--eval-ways", "2", "3") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["recipe"] == "omniglot"
    metrics = results["metrics"]["protonet"]
    assert set(metrics) == {"acc_2w1s", "acc_2w1s_ci95", "acc_3w1s", "acc_3w1s_ci95"}
    assert 0.0 <= metrics["acc_3w1s"] <= 100.0
    assert "protonet_3w1s" in results["config"]["cells"]
    # Same command with more epochs: resumes after epoch 1 from the backup.
    assert _run(recipe, data, out, "--algorithm", "protonet", "--epochs", "2") == 0
    with (out / "protonet_3w1s" / "curve.csv").open() as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert epochs == [1, 2]
    assert (out / "protonet_3w1s" / "best.keras").is_file()
    assert (out / "learning_curves.png").stat().st_size > 1000


def test_read_curves_parses_cell_names_and_skips_refits(tmp_path):
    from fewshot.recipes.omniglot import plot_learning_curves, read_curves

    rows = "epoch,minutes,accuracy,loss,val_accuracy,val_loss\n1,1.5,0.5,1.0,0.25,2.0\n2,3.0,0.6,0.9,0.5,1.5\n"
    for cell in ("task_retrieval_20w5s", "protonet_5w1s"):
        (tmp_path / cell).mkdir()
        (tmp_path / cell / "curve.csv").write_text(rows)
    (tmp_path / "protonet_5w1s_trainval").mkdir()
    (tmp_path / "protonet_5w1s_trainval" / "curve.csv").write_text("epoch,minutes,accuracy,loss\n1,1.0,0.5,1.0\n")
    curves = read_curves(tmp_path)
    assert set(curves) == {(20, 5), (5, 1)}
    minutes, accuracy = curves[(20, 5)]["task_retrieval"]
    assert minutes.tolist() == [1.5, 3.0] and accuracy.tolist() == [25.0, 50.0]
    assert plot_learning_curves(tmp_path, tmp_path / "curves.png").stat().st_size > 1000


@pytest.mark.slow
def test_maml_cell_merges_into_the_same_results(setup):
    recipe, data, out = setup
    assert _run(recipe, data, out, "--algorithm", "fomaml") == 0
    assert _run(recipe, data, out, "--algorithm", "siamese") == 0
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    assert set(metrics) == {"fomaml", "siamese"}
    assert "acc_3w1s" in metrics["fomaml"]
    assert "| fomaml |" in (out / "results.md").read_text()


def test_bad_options_are_one_line_errors(setup, capsys):
    recipe, data, out = setup
    assert _run(recipe, data, out, "--algorithm", "maml", "--eval-ways", "2", "3") == 2
    assert "--eval-ways needs a metric learner" in capsys.readouterr().err
    assert _run(recipe, data, out, "--algorithm", "protonet", "--eval-ways", "2", "0") == 2
    assert "Invalid value received for --eval-ways. Expected a positive integer. Received: 0" in capsys.readouterr().err
    assert cli.main(["run", str(recipe), "--out", str(out), "--algorithm", "protonet",
                     "--data-dir", str(out.parent / "nowhere"), "--quiet"]) == 2
    assert "Omniglot zips not found" in capsys.readouterr().err


def test_resample_is_recorded_and_a_cell_folder_keeps_its_images(setup, capsys):
    recipe, data, out = setup
    assert _run(recipe, data, out, "--algorithm", "protonet", "--resample", "nearest") == 0
    cell = json.loads((out / "results.json").read_text())["config"]["cells"]["protonet_3w1s"]
    assert cell["resample"] == "nearest"
    # Resuming or testing that folder with the antialiased images is refused.
    assert _run(recipe, data, out, "--algorithm", "protonet", "--eval-only") == 2
    assert "holds a model trained on 'nearest' images. Give another --out. Received: --resample lanczos" \
        in capsys.readouterr().err
    assert _run(recipe, data, out, "--algorithm", "protonet", "--eval-only", "--resample", "nearest") == 0


def test_trainval_retrains_for_the_epochs_validation_chose(setup, capsys):
    recipe, data, out = setup
    assert _run(recipe, data, out, "--algorithm", "protonet", "--trainval") == 2
    assert "--trainval needs the validation run of protonet_3w1s" in capsys.readouterr().err
    assert _run(recipe, data, out, "--algorithm", "protonet", "--epochs", "3") == 0
    with (out / "protonet_3w1s" / "curve.csv").open() as f:
        rows = list(csv.DictReader(f))
    chosen = int(max(rows, key=lambda r: float(r["val_accuracy"]))["epoch"])

    assert _run(recipe, data, out, "--algorithm", "protonet", "--trainval") == 0
    work = out / "protonet_3w1s_trainval"
    with (work / "curve.csv").open() as f:
        refit = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in refit] == list(range(1, chosen + 1))
    assert "val_accuracy" not in refit[0]  # no validation characters left to validate on
    assert (work / "final.keras").is_file()
    cells = json.loads((out / "results.json").read_text())["config"]["cells"]
    assert cells["protonet_3w1s_trainval"]["trainval"] is True
    assert cells["protonet_3w1s_trainval"]["epochs"] == chosen
    assert cells["protonet_3w1s_trainval"]["test_rotations"] is True
    assert "acc_3w1s" in cells["protonet_3w1s_trainval"]["test"]


def test_trainval_with_epochs_needs_no_validation_run(setup):
    recipe, data, out = setup
    assert _run(recipe, data, out, "--algorithm", "protonet", "--trainval", "--epochs", "2",
                "--seed", "1") == 0
    with (out / "protonet_3w1s_trainval" / "curve.csv").open() as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2]
    cells = json.loads((out / "results.json").read_text())["config"]["cells"]
    assert cells["protonet_3w1s_trainval"]["epochs"] == 2
    assert not (out / "protonet_3w1s").exists()


def test_eval_only_tests_the_saved_model_without_training(setup, capsys):
    recipe, data, out = setup
    assert _run(recipe, data, out, "--algorithm", "protonet", "--eval-only") == 2
    assert "--eval-only needs a trained model" in capsys.readouterr().err
    assert _run(recipe, data, out, "--algorithm", "protonet") == 0
    curve = (out / "protonet_3w1s" / "curve.csv").read_text()
    assert _run(recipe, data, out, "--algorithm", "protonet", "--eval-only", "--no-test-rotations") == 0
    assert (out / "protonet_3w1s" / "curve.csv").read_text() == curve  # no epoch trained
    cell = json.loads((out / "results.json").read_text())["config"]["cells"]["protonet_3w1s"]
    assert cell["test_rotations"] is False


def test_task_parallel_threads_warn_when_the_runtime_already_runs(setup):
    """The pools can only be set in a fresh process: here (TensorFlow running) a warning, and
    the cell still trains with two tasks per chunk."""
    import tensorflow as tf

    recipe, data, out = setup
    recipe.write_text(RECIPE.replace("tasks_per_chunk = 1", "tasks_per_chunk = 2\ntask_parallel_threads = true"))
    tf.constant(0.0) + 1.0  # the runtime has started, with TensorFlow's default pools
    with pytest.warns(UserWarning, match="task_parallel_threads = true` not applied.*before any TensorFlow op"):
        assert _run(recipe, data, out, "--algorithm", "maml") == 0
    assert "acc_3w1s" in json.loads((out / "results.json").read_text())["metrics"]["maml"]


def _cell(algorithm="protonet", ways=5, shots=1, trainval=False, seed=0):
    return {"algorithm": algorithm, "ways": ways, "shots": shots, "trainval": trainval, "seed": seed,
            "time_budget": None, "eval_only": False}


def _merge_all(runs, previous=None):
    """Merges (settings, metrics) cells in order, as results.json would be after each run."""
    from fewshot.recipes.omniglot import merge_cell_results

    payload = previous or {}
    for settings, metrics in runs:
        config, merged = merge_cell_results(payload, settings, metrics, minutes=1.0)
        payload = {"config": config, "metrics": {
            m: {k: v for name, (mean, half) in values.items()
                for k, v in ((name, mean), (name + "_ci95", half))}
            for m, values in merged.items()}}
    return payload


def test_trainval_number_wins_whatever_the_order_and_its_source_is_recorded():
    """--eval-only of the validation cell after the refit replaced the refit's headline number."""
    validation = (_cell(), {"acc_5w1s": (97.0, 0.3), "acc_20w1s": (90.0, 0.4)})
    refit = (_cell(trainval=True), {"acc_5w1s": (98.8, 0.2), "acc_20w1s": (95.8, 0.2)})
    eval_only_again = (_cell(), {"acc_5w1s": (97.1, 0.3), "acc_20w1s": (90.1, 0.4)})
    for order in ([validation, refit, eval_only_again], [refit, validation], [refit, eval_only_again, validation]):
        payload = _merge_all(order)
        assert payload["metrics"]["protonet"]["acc_5w1s"] == 98.8
        assert payload["metrics"]["protonet"]["acc_20w1s_ci95"] == 0.2
        assert payload["config"]["metrics_source"]["protonet"] == {
            "acc_5w1s": "protonet_5w1s_trainval", "acc_20w1s": "protonet_5w1s_trainval"}
        assert payload["config"]["seed"] == 0
        # Every cell keeps its own numbers.
        assert payload["config"]["cells"]["protonet_5w1s"]["test"]["acc_5w1s"][0] in (97.0, 97.1)
    # Without a refit, the validation cell run again replaces its own numbers.
    payload = _merge_all([validation, eval_only_again])
    assert payload["metrics"]["protonet"]["acc_5w1s"] == 97.1


def test_a_cell_trained_at_the_tested_ways_beats_one_that_only_tests_there():
    five_way = (_cell(trainval=True), {"acc_5w1s": (98.8, 0.2), "acc_20w1s": (95.8, 0.2)})
    twenty_way = (_cell(ways=20), {"acc_20w1s": (96.5, 0.2)})
    for order in ([five_way, twenty_way], [twenty_way, five_way]):
        payload = _merge_all(order)
        assert payload["metrics"]["protonet"]["acc_20w1s"] == 96.5
        assert payload["config"]["metrics_source"]["protonet"] == {
            "acc_5w1s": "protonet_5w1s_trainval", "acc_20w1s": "protonet_20w1s"}


def test_results_written_before_sources_were_recorded_are_read_by_their_cells():
    """An older results.json (no metrics_source): the source is found from the cells' test numbers."""
    old = _merge_all([(_cell(), {"acc_5w1s": (97.0, 0.3)}), (_cell(trainval=True), {"acc_5w1s": (98.81234, 0.2)})])
    del old["config"]["metrics_source"], old["config"]["seed"]
    payload = _merge_all([(_cell(), {"acc_5w1s": (97.2, 0.3)}), (_cell("maml", seed=0), {"acc_5w1s": (60.0, 1.0)})],
                         previous=old)
    assert payload["metrics"]["protonet"]["acc_5w1s"] == 98.81234
    assert payload["config"]["metrics_source"] == {
        "protonet": {"acc_5w1s": "protonet_5w1s_trainval"}, "maml": {"acc_5w1s": "maml_5w1s"}}


def test_seed_is_recorded_at_the_top_and_summarize_names_it(tmp_path):
    from fewshot.recipes.results import write_results
    from fewshot.recipes.omniglot import merge_cell_results
    from fewshot.recipes.summary import summarize_runs, summary_table

    outs = []
    for seed, accuracy in ((3, 97.0), (4, 98.0)):
        config, merged = merge_cell_results({}, _cell(seed=seed), {"acc_5w1s": (accuracy, 0.3)}, 1.0)
        assert config["seed"] == seed
        outs.append(write_results(tmp_path / f"seed{seed}", "omniglot", "omniglot", config, merged))
    table = summary_table(summarize_runs(outs, "acc_5w1s"))
    assert "| method (acc_5w1s) | seed 3 | seed 4 |" in table
    mixed = _merge_all([(_cell(seed=1), {"acc_5w1s": (97.0, 0.3)}), (_cell("maml", seed=0), {"acc_5w1s": (50.0, 1.0)})])
    assert mixed["config"]["seed"] == [0, 1]


def test_pytorch_layer_defaults_are_used_recorded_and_kept_by_the_folder(setup, capsys):
    import keras

    recipe, data, out = setup
    assert _run(recipe, data, out, "--algorithm", "protonet", "--init", "pytorch") == 0
    cell = json.loads((out / "results.json").read_text())["config"]["cells"]["protonet_3w1s"]
    assert cell["init"] == "pytorch"
    model = keras.models.load_model(out / "protonet_3w1s" / "best.keras")
    assert model.backbone.get_layer("bn_1").epsilon == 1e-5
    assert model.backbone.get_layer("bn_1").momentum == 0.9
    assert model.optimizer.epsilon == 1e-8
    # The folder was trained with PyTorch's defaults: resuming it with Keras' is refused.
    assert _run(recipe, data, out, "--algorithm", "protonet") == 2
    assert "holds a model trained with 'pytorch' layer defaults. Give another --out. Received: --init keras" \
        in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run(recipe, data, out, "--algorithm", "protonet", "--init", "torch")
    assert "argument --init: invalid choice: 'torch'" in capsys.readouterr().err


def test_best_epoch_reads_either_monitor_and_keeps_the_first_of_a_tie(tmp_path):
    from fewshot.recipes.episodic import best_epoch

    curve = tmp_path / "curve.csv"
    assert best_epoch(curve) is None
    curve.write_text("epoch,minutes,accuracy,loss\n1,1.0,0.5,1.0\n")  # a refit: nothing validated
    assert best_epoch(curve) is None
    curve.write_text("epoch,minutes,val_accuracy,val_loss\n1,1,0.5,0.9\n2,2,0.7,0.4\n3,3,0.7,0.6\n4,4,0.6,0.4\n")
    assert best_epoch(curve, "val_accuracy") == (2, 0.7)
    assert best_epoch(curve, "val_loss") == (2, 0.4)


def test_curve_patience_stops_after_patience_epochs_without_a_better_value(tmp_path):
    import types

    from fewshot.recipes.episodic import CurvePatience

    curve = tmp_path / "curve.csv"
    curve.write_text("epoch,minutes,val_accuracy,val_loss\n1,1,0.5,0.9\n2,2,0.6,0.5\n3,3,0.7,0.6\n")
    callback = CurvePatience(curve, "val_loss", 2)
    callback.set_model(types.SimpleNamespace(stop_training=False))
    callback.on_epoch_end(2)  # epoch 3: one epoch since the lowest loss (epoch 2)
    assert callback.model.stop_training is False
    with curve.open("a") as f:
        f.write("4,4,0.8,0.55\n")
    callback.on_epoch_end(3)  # epoch 4: two epochs since epoch 2
    assert callback.model.stop_training is True
    assert CurvePatience(curve, "val_accuracy", 2).exhausted(4) is False  # accuracy still rising


def test_val_loss_monitor_picks_the_checkpoint_and_the_refit_adds_the_patience(setup, capsys):
    """Snell et al.'s protocol: best model by validation loss; refit for that epoch + patience."""
    recipe, data, out = setup
    recipe.write_text(RECIPE + 'monitor = "val_loss"\npatience = 2\n')
    assert _run(recipe, data, out, "--algorithm", "protonet", "--epochs", "12") == 0
    with (out / "protonet_3w1s" / "curve.csv").open() as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["val_loss"]) for r in rows]
    best = losses.index(min(losses)) + 1
    # Stopped 2 epochs after its lowest validation loss (or ran all 12 epochs).
    assert len(rows) == min(12, best + 2)
    assert (out / "protonet_3w1s" / "monitor.txt").read_text() == "val_loss\n"
    assert _run(recipe, data, out, "--algorithm", "protonet", "--trainval") == 0
    with (out / "protonet_3w1s_trainval" / "curve.csv").open() as f:
        assert len(list(csv.DictReader(f))) == best + 2
    # The validation folder's checkpoint was chosen by loss: testing it by accuracy is refused.
    recipe.write_text(RECIPE + 'monitor = "val_accuracy"\n')
    assert _run(recipe, data, out, "--algorithm", "protonet", "--eval-only") == 2
    assert ("holds a model chosen by 'val_loss'. Give another --out. Received: monitor (recipe.toml) "
            "val_accuracy") in capsys.readouterr().err
    for line, message in (('monitor = "loss"', "Invalid value received for monitor. Expected one of "
                           "['val_accuracy', 'val_loss']. Received: 'loss'"),
                          ("patience = -1", "Invalid value received for patience. Expected an integer >= 0")):
        recipe.write_text(RECIPE + line + "\n")
        assert _run(recipe, data, out, "--algorithm", "protonet", "--eval-only") == 2
        assert message in capsys.readouterr().err


def test_lr_drop_lowers_the_outer_rate_and_the_folder_keeps_it(setup, capsys):
    import keras

    def rate(folder):
        return keras.models.load_model(folder / "maml_3w1s" / "best.keras").optimizer.learning_rate.numpy()

    recipe, data, out = setup
    assert _run(recipe, data, out, "--algorithm", "maml", "--epochs", "2", "--lr-drop", "0", "1e-5") == 0
    assert rate(out) == pytest.approx(1e-5)
    assert (out / "maml_3w1s" / "lr_drop.txt").read_text().split() == ["0", "1e-05"]
    assert json.loads((out / "results.json").read_text())["config"]["cells"]["maml_3w1s"]["lr_drop"] == [[0, 1e-5]]
    # Resuming without the flag keeps the folder's drop; changing it is refused.
    assert _run(recipe, data, out, "--algorithm", "maml", "--epochs", "3") == 0
    assert rate(out) == pytest.approx(1e-5)
    assert _run(recipe, data, out, "--algorithm", "maml", "--epochs", "4", "--lr-drop", "3", "1e-4") == 2
    assert "was trained with --lr-drop 0 1e-05; a run may only add drops after those. Give another " \
        "--out. Received: --lr-drop 3 0.0001" in capsys.readouterr().err
    # A later run adds a second drop, at the epochs trained so far.
    assert _run(recipe, data, out, "--algorithm", "maml", "--epochs", "4",
                "--lr-drop", "0", "1e-5", "--lr-drop", "3", "1e-6") == 0
    assert rate(out) in (pytest.approx(1e-5), pytest.approx(1e-6))  # the best of epochs 1-4
    assert (out / "maml_3w1s" / "lr_drop.txt").read_text().split() == ["0", "1e-05", "3", "1e-06"]
    # Without a drop the recipe's rate is used; a drop before the epochs already trained is refused.
    other = out.parent / "other"
    assert _run(recipe, data, other, "--algorithm", "maml", "--epochs", "2") == 0
    assert rate(other) == pytest.approx(1e-3)
    assert _run(recipe, data, other, "--algorithm", "maml", "--epochs", "3", "--lr-drop", "1", "1e-4") == 2
    assert "has trained 2 epochs, so a new drop cannot start before epoch 2" in capsys.readouterr().err
    assert _run(recipe, data, other, "--algorithm", "maml", "--lr-drop", "x", "1e-4") == 2
    assert "Invalid value received for --lr-drop. Expected EPOCH LR" in capsys.readouterr().err
    assert _run(recipe, data, other, "--algorithm", "maml", "--lr-drop", "5", "1e-4", "--lr-drop", "5", "1e-5") == 2
    assert "increasing from one drop to the next" in capsys.readouterr().err
    halving = recipe.parent / "halving.toml"
    halving.write_text(RECIPE + "lr_halve_every = 10\n")
    assert _run(halving, data, other, "--algorithm", "protonet", "--lr-drop", "5", "1e-4") == 2
    assert "protonet halves it every" in capsys.readouterr().err


def test_step_decay_applies_each_drop_from_its_epoch():
    from fewshot.recipes.omniglot import _step_decay

    rate = _step_decay({"outer_lr": 1e-3, "lr_drop": [(2, 1e-4), (4, 1e-5)]})
    assert [rate(epoch, None) for epoch in range(6)] == [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5]


def test_choose_eval_steps_picks_the_best_validation_count_and_tests_with_it(setup, capsys):
    recipe, data, out = setup
    choosing = recipe.parent / "choosing.toml"
    choosing.write_text(RECIPE.replace("eval_steps = 1\n", "eval_steps = 1\nchoice_episodes = 8\n"))
    assert _run(choosing, data, out, "--algorithm", "maml", "--epochs", "2", "--choose-eval-steps", "3", "1") == 0
    cell = json.loads((out / "results.json").read_text())["config"]["cells"]["maml_3w1s"]
    scores = cell["eval_steps_validation"]
    assert list(scores) == ["1", "3"] and cell["choice_episodes"] == 8
    best = max(scores.values())
    assert cell["eval_steps"] == min(int(k) for k, v in scores.items() if v == best)
    chosen_test = cell["test"]["acc_3w1s"]
    # The same model tested with that count fixed in the recipe gives the same test number.
    fixed = recipe.parent / "fixed.toml"
    fixed.write_text(RECIPE.replace("eval_steps = 1", f"eval_steps = {cell['eval_steps']}"))
    assert _run(fixed, data, out, "--algorithm", "maml", "--eval-only") == 0
    cell = json.loads((out / "results.json").read_text())["config"]["cells"]["maml_3w1s"]
    assert cell["test"]["acc_3w1s"] == chosen_test and cell["choose_eval_steps"] is None
    # The recipe's key works too.
    keyed = recipe.parent / "keyed.toml"
    keyed.write_text(RECIPE.replace("eval_steps = 1\n", "eval_steps = 1\nchoose_eval_steps = [2]\nchoice_episodes = 4\n"))
    assert _run(keyed, data, out, "--algorithm", "maml", "--eval-only") == 0
    cell = json.loads((out / "results.json").read_text())["config"]["cells"]["maml_3w1s"]
    assert cell["eval_steps"] == 2 and list(cell["eval_steps_validation"]) == ["2"] and cell["choice_episodes"] == 4
    capsys.readouterr()
    assert _run(recipe, data, out, "--algorithm", "protonet", "--choose-eval-steps", "1", "2") == 2
    assert "protonet has none to choose" in capsys.readouterr().err
    assert _run(recipe, data, out, "--algorithm", "maml", "--trainval", "--choose-eval-steps", "1") == 2
    assert "needs the validation characters, which --trainval trains on" in capsys.readouterr().err
    assert _run(recipe, data, out, "--algorithm", "maml", "--eval-only", "--choose-eval-steps", "0") == 2
    assert "Invalid value received for --choose-eval-steps. Expected a list of positive integers" \
        in capsys.readouterr().err


def test_choose_eval_steps_defaults_to_500_validation_episodes():
    from fewshot.recipes.omniglot import _parse_choose_eval_steps

    s = {"algorithm": "metasgd", "trainval": False}
    assert _parse_choose_eval_steps([5, 1, 3, 1], s) == [1, 3, 5] and s["choice_episodes"] == 500
    assert _parse_choose_eval_steps(None, {"algorithm": "maml", "trainval": True}) is None
    # Under --trainval the recipe's key gives way to eval_steps; the flag is refused (above).
    s = {"algorithm": "anil", "trainval": True, "choose_eval_steps": [1, 5]}
    assert _parse_choose_eval_steps(None, s) is None and "choice_episodes" not in s
    with pytest.raises(ValueError, match="--choose-eval-steps needs the validation characters"):
        _parse_choose_eval_steps([1, 5], s)
    with pytest.raises(ValueError, match=r"choose_eval_steps. Expected a list of positive integers"):
        _parse_choose_eval_steps(None, {"algorithm": "anil", "trainval": True, "choose_eval_steps": [0]})
    with pytest.raises(ValueError, match="choice_episodes. Expected a positive integer .* Received: 0"):
        _parse_choose_eval_steps([1], {"algorithm": "maml", "trainval": False, "choice_episodes": 0})
    with pytest.raises(ValueError, match=r"its memory holds the validation tasks\)"):
        _parse_choose_eval_steps([1], {"algorithm": "task_retrieval", "trainval": False})


def test_train_shots_give_training_episodes_more_support_and_are_recorded(setup, capsys):
    recipe, data, out = setup
    import keras

    recipe.write_text(RECIPE + "[reptile]\ntrain_shots = 3\ninner_steps = 2\ninner_batch_size = 4\n")
    assert _run(recipe, data, out, "--algorithm", "reptile") == 0
    cell = json.loads((out / "results.json").read_text())["config"]["cells"]["reptile_3w1s"]
    assert cell["train_shots"] == 3 and cell["shots"] == 1 and cell["inner_batch_size"] == 4
    assert keras.models.load_model(out / "reptile_3w1s" / "best.keras").inner_batch_size == 4
    assert set(cell["test"]) == {"acc_3w1s"}
    for value in ("0", "1.5", "true"):
        recipe.write_text(RECIPE + f"[reptile]\ntrain_shots = {value}\n")
        assert _run(recipe, data, out, "--algorithm", "reptile", "--shots", "2") == 2
        assert "Invalid value received for train_shots. Expected an integer >= the cell's 2 shots" \
            in capsys.readouterr().err


def test_train_shots_default_to_the_cells_shots():
    import argparse

    from fewshot.recipes.omniglot import add_arguments, recipe_settings

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--algorithm", "maml"])  # every option at its default
    assert recipe_settings({}, args)["train_shots"] == 1
    assert recipe_settings({"maml": {"train_shots": 4}}, args)["train_shots"] == 4


def test_an_n_way_table_overrides_its_section_for_n_way_cells_only():
    import argparse

    from fewshot.recipes.omniglot import add_arguments, recipe_settings

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = {"train": {"inner_lr": 0.4, "inner_steps": 1, "20-way": {"inner_steps": 3, "inner_lr": 0.3}},
              "maml": {"20-way": {"inner_lr": 0.1}}, "fomaml": {"inner_lr": 0.2}}
    five = recipe_settings(config, parser.parse_args(["--algorithm", "maml", "--ways", "5"]))
    assert (five["inner_lr"], five["inner_steps"], five["ways_table"]) == (0.4, 1, None)
    twenty = recipe_settings(config, parser.parse_args(["--algorithm", "maml", "--ways", "20"]))
    assert (twenty["inner_lr"], twenty["inner_steps"], twenty["ways_table"]) == (0.1, 3, "maml.20-way")
    assert "20-way" not in twenty
    # A section's table sits under the next section's keys: [fomaml] keeps its own inner_lr.
    other = recipe_settings(config, parser.parse_args(["--algorithm", "fomaml", "--ways", "20"]))
    assert (other["inner_lr"], other["inner_steps"], other["ways_table"]) == (0.2, 3, "train.20-way")
    for bad in ({"maml": {"twenty": {"inner_lr": 0.1}}}, {"maml": {"0-way": {}}},
                {"maml": {"20-way": {"deeper": {"inner_lr": 0.1}}}}):
        with pytest.raises(ValueError, match=r"Invalid table received in recipe.toml: \[maml\.\w+-?\w*\]"):
            recipe_settings(bad, parser.parse_args(["--algorithm", "maml", "--ways", "20"]))


def test_a_cell_folder_keeps_the_n_way_table_it_was_trained_with(setup, capsys):
    recipe, data, out = setup
    assert _run(recipe, data, out, "--algorithm", "protonet") == 0
    tabled = recipe.parent / "tabled.toml"
    tabled.write_text(RECIPE + "[protonet.3-way]\nvalidation_episodes = 2\n")
    # The folder trained without the table refuses it; a new folder takes it and records it.
    capsys.readouterr()
    assert _run(tabled, data, out, "--algorithm", "protonet", "--eval-only") == 2
    assert "holds a model trained with the recipe's N-way table 'none'" in capsys.readouterr().err
    assert _run(tabled, data, out / "new", "--algorithm", "protonet") == 0
    cell = json.loads((out / "new" / "results.json").read_text())["config"]["cells"]["protonet_3w1s"]
    assert cell["ways_table"] == "protonet.3-way" and cell["validation_episodes"] == 2
    assert (out / "new" / "protonet_3w1s" / "ways_table.txt").read_text() == "protonet.3-way\n"


def _save_learner(path, algorithm, ways=3, **overrides):
    """An untrained learner of the recipe's kind, saved where --meta-init can read it."""
    from fewshot.recipes.episodic import build_learner

    settings = {"algorithm": algorithm, "ways": ways, "inner_lr": 0.4, "inner_steps": 1, "vectorize": False,
                "tasks_per_chunk": 1, "outer_lr": 0.001, **overrides}
    learner = build_learner(settings, input_shape=(28, 28, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    learner.save(path)
    return learner


def test_meta_init_gives_task_retrieval_a_trained_cells_weights_without_training(setup, capsys):
    import keras
    import numpy as np

    recipe, data, out = setup
    source = _save_learner(out / "fomaml_3w1s" / "best.keras", "fomaml")
    (out / "fomaml_3w1s" / "clock.json").write_text('{"epoch": 40, "minutes": 12.5}')
    assert _run(recipe, data, out, "--algorithm", "task_retrieval", "--meta-init",
                str(out / "fomaml_3w1s" / "best.keras")) == 0
    work = out / "task_retrieval_3w1s"
    assert not (work / "curve.csv").exists() and not (work / "backup").exists()  # not trained
    saved = keras.models.load_model(work / "best.keras")
    for mine, theirs in zip(saved.backbone.get_weights(), source.backbone.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    cell = json.loads((out / "results.json").read_text())["config"]["cells"]["task_retrieval_3w1s"]
    assert cell["meta_init"] == str((out / "fomaml_3w1s" / "best.keras").resolve())
    assert cell["train_minutes"] == 12.5  # the source's training
    assert "acc_3w1s" in cell["test"]
    # The folder keeps its source: --eval-only needs no --meta-init, another source is refused.
    assert _run(recipe, data, out, "--algorithm", "task_retrieval", "--eval-only") == 0
    cell = json.loads((out / "results.json").read_text())["config"]["cells"]["task_retrieval_3w1s"]
    assert cell["meta_init"].endswith("best.keras") and cell["train_minutes"] == 12.5
    other = out / "maml_3w1s" / "best.keras"
    _save_learner(other, "maml")
    assert _run(recipe, data, out, "--algorithm", "task_retrieval", "--meta-init", str(other)) == 2
    assert "holds a model whose meta-initialisation came from" in capsys.readouterr().err


def test_meta_init_refuses_what_would_not_adapt_as_the_cell_does(setup, capsys):
    recipe, data, out = setup

    def refused(path, *extra):
        assert _run(recipe, data, out, "--algorithm", "task_retrieval", "--meta-init", str(path), *extra) == 2
        return capsys.readouterr().err

    _save_learner(out / "src" / "protonet.keras", "protonet")
    assert "it is a PrototypicalNetwork, not a MAML or first-order MAML model" in refused(out / "src" / "protonet.keras")
    _save_learner(out / "src" / "step.keras", "fomaml", inner_lr=0.1)
    assert "its inner_lr is 0.1, this cell's 0.4" in refused(out / "src" / "step.keras")
    _save_learner(out / "src" / "five.keras", "fomaml", ways=5)
    assert "do not match this cell's 3-way Conv4" in refused(out / "src" / "five.keras")
    _save_learner(out / "nearest" / "best.keras", "fomaml")
    (out / "nearest" / "resample.txt").write_text("nearest\n")  # as the recipe's cell folders keep it
    assert "its cell was trained on 'nearest' images, this cell uses 'lanczos' (--resample)" in refused(
        out / "nearest" / "best.keras")
    (out / "src" / "junk.keras").write_text("not a model")
    assert "is not a saved Keras model" in refused(out / "src" / "junk.keras")
    assert "no such model. Received: --meta-init" in refused(out / "src" / "missing.keras")
    assert _run(recipe, data, out, "--algorithm", "fomaml", "--meta-init", str(out / "src" / "five.keras")) == 2
    assert "goes with --algorithm task_retrieval" in capsys.readouterr().err
    # Nothing refused was kept: the folder is still free for any source.
    assert not (out / "task_retrieval_3w1s" / "best.keras").exists()
    assert not (out / "task_retrieval_3w1s" / "meta_init.txt").exists()


def test_meta_init_is_refused_for_a_folder_that_trained_its_own(setup, capsys):
    recipe, data, out = setup
    (out / "task_retrieval_3w1s").mkdir(parents=True)
    (out / "task_retrieval_3w1s" / "clock.json").write_text('{"epoch": 1, "minutes": 0.1}')
    _save_learner(out / "src" / "fomaml.keras", "fomaml")
    assert _run(recipe, data, out, "--algorithm", "task_retrieval", "--meta-init", str(out / "src" / "fomaml.keras")) == 2
    assert "holds a task_retrieval model trained there. Give another --out" in capsys.readouterr().err
