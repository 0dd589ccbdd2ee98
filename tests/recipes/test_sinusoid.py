"""The sinusoid recipe end to end, on a configuration small enough for CI."""

import json
import pathlib

import keras
import pytest

import fewshot
from fewshot import cli

RECIPE = pathlib.Path(__file__).parents[2] / "recipes" / "sinusoid" / "recipe.toml"


def _tiny_recipe(tmp_path):
    text = RECIPE.read_text()
    for key, value in {
        "meta_steps = 15000": "meta_steps = 40",
        "batches_per_epoch = 500": "batches_per_epoch = 20",
        "validation_tasks = 100": "validation_tasks = 5",
        "steps = 10000": "steps = 40",
        "num_tasks = 600": "num_tasks = 30",
        "threads = 1 ": "threads = 0 ",  # in-process: TensorFlow's pools are already fixed
    }.items():
        assert key in text, key
        text = text.replace(key, value)
    folder = tmp_path / "recipe"
    folder.mkdir()
    (folder / "recipe.toml").write_text(text)
    return folder


def test_run_writes_results_plot_and_models(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["run", str(_tiny_recipe(tmp_path)), "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["recipe"] == "sinusoid" and results["config"]["meta_steps"] == 40
    assert set(results["metrics"]) == {"maml", "fomaml", "pretrained_finetune"}
    for method in results["metrics"].values():
        for k in (5, 10):
            for s in (0, 1, 10):
                assert method[f"mse_k{k}_step{s}"] >= 0
                assert method[f"mse_k{k}_step{s}_ci95"] >= 0
    # Steps on the support set lower the query error of the meta-initialisation.
    maml = results["metrics"]["maml"]
    assert maml["mse_k10_step10"] < maml["mse_k10_step0"]
    assert (out / "adapted_curves.png").stat().st_size > 10_000
    assert "| maml |" in (out / "results.md").read_text()
    loaded = keras.saving.load_model(out / "models" / "maml.keras")
    assert isinstance(loaded, fewshot.MAML)
    printed = capsys.readouterr().out
    assert "MAML adapted to a new task" in printed and "| pretrained_finetune |" in printed


def test_bad_recipe_path_is_one_clear_line(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "No recipe found at" in err and "Traceback" not in err


def test_recipe_with_unknown_runner(tmp_path, capsys):
    (tmp_path / "recipe.toml").write_text('runner = "nope"\n')
    assert cli.main(["run", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "Received: runner='nope'" in capsys.readouterr().err


def test_bad_option_value(tmp_path, capsys):
    code = cli.main(["run", str(_tiny_recipe(tmp_path)), "--out", str(tmp_path / "o"), "--meta-steps", "0"])
    assert code == 2
    assert "Received: --meta-steps=0" in capsys.readouterr().err


def test_help_lists_recipe_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", str(RECIPE.parent), "--help"])
    assert exit_info.value.code == 0
    assert "--full" in capsys.readouterr().out


def test_diverged_tasks_are_counted_not_averaged():
    """A task whose inner loop overflows is counted; the mean is over the others."""
    import numpy as np

    from fewshot.models import mlp
    from fewshot.recipes.sinusoid import evaluate_steps

    keras.utils.set_random_seed(0)
    settings = {
        "eval_steps": [0, 1, 10], "eval_shots": [5], "query_points": 20,
        "task": {"amplitude_range": [0.1, 5.0], "phase_range": [0.0, 3.14], "x_range": [-5.0, 5.0]},
    }
    # A step size far too large: the loss explodes within ten steps on every task.
    learner = fewshot.MAML(mlp(input_shape=(1,), hidden=[40, 40], outputs=1), inner_lr=200.0)
    learner.compile(loss="mse")
    results, diverged = evaluate_steps(learner, settings, seed=3, num_tasks=12, chunk=5)
    assert "mse_k5_step0" not in diverged and np.isfinite(results["mse_k5_step0"]).all()
    assert diverged["mse_k5_step10"] == 12 and "mse_k5_step10" not in results
    # A sane step size diverges nowhere: every metric is reported, none counted.
    learner = fewshot.MAML(mlp(input_shape=(1,), hidden=[40, 40], outputs=1), inner_lr=0.01)
    learner.compile(loss="mse")
    results, diverged = evaluate_steps(learner, settings, seed=3, num_tasks=12, chunk=5)
    assert diverged == {} and set(results) == {"mse_k5_step0", "mse_k5_step1", "mse_k5_step10"}


def test_markdown_table_notes():
    from fewshot.recipes.results import markdown_table

    table = markdown_table(
        {"maml": {"a": (0.5, 0.1)}}, ["a", "b"],
        notes={"maml": {"a": " (1 of 600 diverged)", "b": " (600 of 600 diverged)"}},
    )
    assert "| maml | 0.500 ± 0.100 (1 of 600 diverged) | (600 of 600 diverged) |" in table


def test_threads_warn_when_the_runtime_already_runs(tmp_path):
    """`threads = 1` needs a fresh process; in this one (TensorFlow running) it warns and goes on."""
    folder = _tiny_recipe(tmp_path)
    recipe = folder / "recipe.toml"
    recipe.write_text(recipe.read_text().replace("threads = 0 ", "threads = 1 "))
    with pytest.warns(UserWarning, match="threads = 1` not applied.*before any TensorFlow op"):
        assert cli.main(["run", str(folder), "--out", str(tmp_path / "out"), "--quiet",
                         "--eval-tasks", "5"]) == 0


@pytest.mark.parametrize("old, new, message", [
    ("threads = 0 ", "threads = -1 ", "Received: threads=-1"),
    ("steps_per_execution = 50", "steps_per_execution = 0", "Invalid value received for `steps_per_execution`"),
])
def test_bad_speed_settings_are_named(tmp_path, capsys, old, new, message):
    folder = _tiny_recipe(tmp_path)
    recipe = folder / "recipe.toml"
    assert old in recipe.read_text()
    recipe.write_text(recipe.read_text().replace(old, new))
    assert cli.main(["run", str(folder), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert message in capsys.readouterr().err


def _tiny_settings(**overrides):
    import argparse

    from fewshot.recipes import sinusoid
    from fewshot.recipes.config import load_recipe

    args = argparse.Namespace(full=False, meta_steps=None, eval_tasks=None, quiet=True)
    settings = sinusoid._settings(load_recipe(RECIPE.parent), args)
    settings.update(hidden=[4], meta_batch_size=2, support_shots=2, query_shots=2,
                    validation_tasks=2, query_points=2, baseline_batch_size=4)
    settings.update(overrides)
    return settings


@pytest.mark.parametrize("steps", [50, 1200])
def test_meta_steps_and_baseline_steps_are_run_exactly(tmp_path, steps):
    """Not rounded to whole epochs of batches_per_epoch = 500 (50 ran 500, 1200 ran 1000)."""
    from fewshot.episodes.regression import Sinusoid
    from fewshot.recipes import sinusoid

    settings = _tiny_settings(meta_steps=steps, baseline_steps=steps)
    assert settings["batches_per_epoch"] == 500 and settings["steps_per_execution"] == 50
    family = Sinusoid(**settings["task"], support_shots=2, query_shots=2)
    learner = sinusoid.train_maml(family, settings, True, tmp_path, 0, 0)
    assert int(learner.optimizer.iterations.numpy()) == steps
    history = json.loads((tmp_path / "history_fomaml.json").read_text())
    assert len(history["loss"]) == len(history["val_loss"]) == -(-steps // 500)
    assert not (tmp_path / "backup" / "fomaml").exists()
    pretrained = sinusoid.train_pretrained(family, settings, 0, 0)
    assert int(pretrained.optimizer.iterations.numpy()) == steps


def test_fit_steps_resumes_in_the_shorter_last_epoch(tmp_path):
    """An interruption in the last, shorter epoch resumes after the whole ones, exactly."""
    import numpy as np

    from fewshot.episodes.regression import Sinusoid
    from fewshot.models import mlp
    from fewshot.recipes.sinusoid import fit_steps

    family = Sinusoid(support_shots=2, query_shots=2)

    def learner():
        keras.utils.set_random_seed(0)
        maml = fewshot.MAML(mlp(input_shape=(1,), hidden=[4], outputs=1), inner_lr=0.01)
        maml.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", steps_per_execution=7)
        return maml

    backup = tmp_path / "backup"
    reference = learner()
    fit_steps(reference, family.stream(2, 20, seed=1), 50, backup=backup, verbose=0)

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:  # the last epoch: 10 of the 50 steps
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_steps(learner(), family.stream(2, 20, seed=1), 50, backup=backup,
                  callbacks=[Interrupt()], verbose=0)
    assert backup.exists()
    resumed = learner()
    history = fit_steps(resumed, family.stream(2, 20, seed=1), 50, backup=backup, verbose=0)
    assert len(history["loss"]) == 1 and int(resumed.optimizer.iterations.numpy()) == 50
    for a, b in zip(reference.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not backup.exists()
