"""The sinusoid recipe: MAML, first-order MAML and a pretrained baseline."""

import json
import pathlib
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from fewshot.algorithms.maml import MAML
from fewshot.episodes.regression import Sinusoid
from fewshot.episodes.stream import EpisodeStream
from fewshot.metrics import mean_ci95
from fewshot.models.mlp import mlp
from fewshot.recipes.console import say
from fewshot.recipes.results import markdown_table, write_results
from fewshot.threads import set_task_parallel_threads_or_warn

# Offsets that keep the training, validation and test task seeds apart.
_VALIDATION_SEED = 1_000_003
_TEST_SEED = 2_000_003


def add_arguments(parser):
    parser.add_argument(
        "--full",
        action="store_true",
        help="train as long as the paper (70k meta-iterations); the default run "
        "takes a few minutes on 2 CPU cores",
    )
    parser.add_argument(
        "--meta-steps", type=int, default=None, help="override the number of meta-updates"
    )
    parser.add_argument(
        "--eval-tasks", type=int, default=None, help="override the number of test tasks (600)"
    )


def run(config, args):
    """Meta-trains, evaluates and writes everything to ``args.out``."""
    settings = _settings(config, args)
    _set_threads(settings["threads"])
    out = pathlib.Path(args.out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    seed = settings["seed"]
    family = Sinusoid(**settings["task"], support_shots=settings["support_shots"],
                      query_shots=settings["query_shots"])

    learners, timings = {}, {}
    for method, first_order in (("maml", False), ("fomaml", True)):
        say(args, f"\n== meta-training {method} ({settings['meta_steps']} meta-steps) ==")
        start = time.perf_counter()
        learners[method] = train_maml(family, settings, first_order, out, verbose, seed)
        timings[method] = time.perf_counter() - start
        learners[method].save(out / "models" / f"{method}.keras")

    say(args, f"\n== pretraining the joint baseline ({settings['baseline_steps']} steps) ==")
    start = time.perf_counter()
    pretrained = train_pretrained(family, settings, verbose, seed)
    timings["pretrained_finetune"] = time.perf_counter() - start
    pretrained.save(out / "models" / "pretrained.keras")
    baseline = MAML(pretrained, inner_lr=settings["inner_lr"], inner_steps=settings["inner_steps"])
    baseline.compile(loss="mse")
    learners["pretrained_finetune"] = baseline

    say(args, f"\n== evaluating on {settings['eval_tasks']} fresh tasks ==")
    metrics, diverged = {}, {}
    for method, learner in learners.items():
        metrics[method], diverged[method] = evaluate_steps(
            learner, settings, seed + _TEST_SEED, settings["eval_tasks"]
        )
    diverged = {m: d for m, d in diverged.items() if d}
    names = [f"mse_k{k}_step{s}" for k in settings["eval_shots"] for s in settings["eval_steps"]]
    notes = {m: {name: f" ({n} of {settings['eval_tasks']} diverged)" for name, n in d.items()}
             for m, d in diverged.items()}
    table = markdown_table(metrics, names, notes=notes)
    if diverged:
        table += (
            "\n\nDiverged: the task's query loss overflowed (NaN or infinite) after that many inner "
            "steps; the mean and interval are over the other tasks."
        )
    run_config = dict(settings, train_seconds={k: round(v, 1) for k, v in timings.items()},
                      diverged_tasks=diverged)
    write_results(out, "sinusoid", "sinusoid (Finn et al. 2017), generated", run_config, metrics)
    (out / "results.md").write_text(
        "Query MSE (mean ± 95% interval over "
        f"{settings['eval_tasks']} test tasks)\n\n{table}\n"
    )
    plot_adapted_curves(learners, family, settings, seed + _TEST_SEED, out / "adapted_curves.png")
    print("\nQuery MSE after S inner steps with K support points "
          f"(mean ± 95% CI over {settings['eval_tasks']} test tasks):\n")
    print(table)
    print("\nTraining time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    _show_predictions(learners["maml"], settings, seed + _TEST_SEED)
    print(f"\nWrote {out / 'results.json'}, {out / 'results.md'}, "
          f"{out / 'adapted_curves.png'} and the models in {out / 'models'}")
    return metrics


def _settings(config, args):
    train, base, ev, full = (config.get(k, {}) for k in ("train", "baseline", "eval", "full"))
    settings = {
        "seed": int(config.get("seed", 0)),
        "task": {
            "amplitude_range": tuple(config["task"]["amplitude_range"]),
            "phase_range": tuple(config["task"]["phase_range"]),
            "x_range": tuple(config["task"]["x_range"]),
        },
        "hidden": list(config["model"]["hidden"]),
        "support_shots": int(train["support_shots"]),
        "query_shots": int(train["query_shots"]),
        "meta_batch_size": int(train["meta_batch_size"]),
        "inner_lr": float(train["inner_lr"]),
        "inner_steps": int(train["inner_steps"]),
        "outer_lr": float(train["outer_lr"]),
        "meta_steps": int(train["meta_steps"]),
        "batches_per_epoch": int(train["batches_per_epoch"]),
        "validation_tasks": int(train["validation_tasks"]),
        "baseline_batch_size": int(base["batch_size"]),
        "baseline_steps": int(base["steps"]),
        "baseline_lr": float(base["lr"]),
        "eval_tasks": int(ev["num_tasks"]),
        "eval_shots": [int(k) for k in ev["shots"]],
        "eval_steps": [int(s) for s in ev["steps"]],
        "query_points": int(ev["query_points"]),
        "threads": int(train.get("threads", 0)),
        "steps_per_execution": int(train.get("steps_per_execution", 1)),
        "full": bool(args.full),
    }
    if settings["threads"] < 0:
        raise ValueError(f"Invalid value received for `threads`. Expected 0 (TensorFlow's pools) or a "
                         f"positive integer. Received: threads={settings['threads']}")
    _positive("steps_per_execution", settings["steps_per_execution"])
    if args.full:
        settings["meta_steps"] = int(full.get("meta_steps", settings["meta_steps"]))
        settings["baseline_steps"] = int(full.get("baseline_steps", settings["baseline_steps"]))
    if args.meta_steps is not None:
        _positive("--meta-steps", args.meta_steps)
        settings["meta_steps"] = args.meta_steps
    if args.eval_tasks is not None:
        _positive("--eval-tasks", args.eval_tasks)
        settings["eval_tasks"] = args.eval_tasks
    return settings


def _set_threads(threads):
    """``threads = N`` in ``[train]``: N TensorFlow threads in all (0: TensorFlow's pools).

    The MLP's ops take microseconds, so handing them between threads costs
    more than it saves: with one thread the default recipe's training and
    first evaluation took 2 min 13 s against 2 min 39 s with TensorFlow's
    two-thread pools (1.19x, 2-core CPU, recipes/sinusoid/README.md).
    Only a fresh process can set the pools; otherwise a warning, and the defaults.
    """
    if threads:
        set_task_parallel_threads_or_warn(threads, setting=f"threads = {threads}")


def _positive(flag, value):
    if value < 1:
        raise ValueError(f"Invalid value received for `{flag}`. Expected a positive integer. "
                         f"Received: {flag}={value}")



def train_maml(family, settings, first_order, out, verbose, seed):
    """Meta-trains one learner; resumable from ``out/backup``."""
    keras.utils.set_random_seed(seed)
    learner = MAML(
        mlp(input_shape=(1,), hidden=settings["hidden"], outputs=1),
        inner_lr=settings["inner_lr"],
        inner_steps=settings["inner_steps"],
        first_order=first_order,
        name="fomaml" if first_order else "maml",
    )
    learner.compile(optimizer=keras.optimizers.Adam(settings["outer_lr"]), loss="mse",
                    steps_per_execution=settings["steps_per_execution"])
    stream = family.stream(settings["meta_batch_size"], settings["batches_per_epoch"], seed=seed)
    validation = Sinusoid(
        **settings["task"], support_shots=settings["support_shots"],
        query_shots=settings["query_points"],
    ).sample(settings["validation_tasks"], seed + _VALIDATION_SEED)
    validation = tf.data.Dataset.from_tensors(validation)
    history = fit_steps(
        learner, stream, settings["meta_steps"], backup=out / "backup" / learner.name,
        validation_data=validation, verbose=verbose,
    )
    (out / f"history_{learner.name}.json").write_text(json.dumps(history) + "\n")
    return learner


def fit_steps(model, stream, steps, backup=None, callbacks=(), **fit_kwargs):
    """Runs exactly `steps` training updates of `model` on `stream`.

    Whole epochs of ``stream.batches_per_epoch`` batches, then, when `steps`
    is not a multiple of it, one shorter last epoch on the batches the stream
    would have drawn first in that epoch. (Rounding to whole epochs ran a
    different number of updates than the one asked for and recorded in
    results.json.) The count is exact for any ``steps_per_execution``: every
    epoch's dataset is finite.

    Args:
        model: a compiled `fewshot.MetaLearner` (meta-updates on episode
            batches) or a plain Keras model (its stream yields ``(x, y)``).
        stream: the `fewshot.episodes.EpisodeStream` to train on.
        steps: the number of updates, a positive integer.
        backup: optional folder for `keras.callbacks.BackupAndRestore`: an
            interrupted run resumes from its last finished epoch, the shorter
            last epoch included.
        callbacks: more Keras callbacks.
        **fit_kwargs: passed to ``model.fit`` (``validation_data``,
            ``verbose``, ...).

    Returns:
        The history dict (``History.history``) of the epochs run.
    """
    whole, rest = divmod(steps, stream.batches_per_epoch)
    history = {}

    def fit(data, epochs, initial_epoch, keep_backup, sync=()):
        extra = []
        if backup is not None:
            extra.append(keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=not keep_backup))
        result = model.fit(data, epochs=epochs, initial_epoch=initial_epoch,
                           callbacks=[*sync, *callbacks, *extra], **fit_kwargs)
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)

    if whole:
        # When a shorter epoch follows, the backup outlives these epochs, so
        # that an interruption there resumes after them.
        fit(stream.dataset, whole, 0, keep_backup=bool(rest), sync=[stream.callback])
    if rest:
        first, seed = whole * stream.batches_per_epoch, tf.constant(stream.seed, tf.int64)
        last = (
            tf.data.Dataset.range(first, first + rest)
            .map(lambda step: stream.sample_fn(tf.stack([seed, step])),
                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE)
        )
        fit(last, whole + 1, whole, keep_backup=False)
    return history


def train_pretrained(family, settings, verbose, seed):
    """A network trained on points of all tasks pooled: the non-meta baseline."""
    keras.utils.set_random_seed(seed)
    model = mlp(input_shape=(1,), hidden=settings["hidden"], outputs=1, name="pretrained")
    model.compile(optimizer=keras.optimizers.Adam(settings["baseline_lr"]), loss="mse",
                  steps_per_execution=settings["steps_per_execution"])
    batch_size = settings["baseline_batch_size"]

    def draw(key):
        # The batches of `family.joint_dataset(batch_size, seed)`, epoch by epoch.
        batch = family.sample(batch_size, key)
        return batch["support_x"][:, 0], batch["support_y"][:, 0]

    stream = EpisodeStream(draw, settings["batches_per_epoch"], seed=seed)
    fit_steps(model, stream, settings["baseline_steps"], shuffle=False, verbose=verbose)
    return model


def evaluate_steps(learner, settings, seed, num_tasks, chunk=100):
    """Query MSE after each number of steps, for each K, over `num_tasks` tasks.

    The same task functions (amplitude, phase) are used for every K. A task
    whose inner loop diverges (its query loss overflows to NaN or infinity,
    as a sharp meta-initialisation can after many steps at the meta-training
    step size) is counted, not averaged: the mean and interval are over the
    tasks whose loss stayed finite, and the count is returned beside them.

    Returns:
        ``(results, diverged)``: ``results`` is ``{"mse_k{K}_step{S}": (mean,
        ci95_half_width)}`` (a metric is left out when every task diverged);
        ``diverged`` is ``{"mse_k{K}_step{S}": count}`` for the metrics with
        diverged tasks.
    """
    max_steps = max(settings["eval_steps"])
    curve_fn = tf.function(lambda batch: learner.query_loss_curve(batch, max_steps), autograph=False)
    results, diverged = {}, {}
    for shots in settings["eval_shots"]:
        family = Sinusoid(**settings["task"], support_shots=shots,
                          query_shots=settings["query_points"])
        rows = []
        for start in range(0, num_tasks, chunk):
            size = min(chunk, num_tasks - start)
            batch = family.sample(size, tf.constant([seed, start], tf.int64))
            rows.append(curve_fn(batch).numpy())
        curve = np.concatenate(rows, axis=1)  # [max_steps + 1, num_tasks]
        for steps in settings["eval_steps"]:
            name = f"mse_k{shots}_step{steps}"
            finite = np.isfinite(curve[steps])
            if not finite.all():
                diverged[name] = int((~finite).sum())
            if finite.any():
                results[name] = mean_ci95(curve[steps][finite])
    return results, diverged


def plot_adapted_curves(learners, family, settings, seed, path, num_tasks=3):
    """Plots adapted predictions against the true functions (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shots = max(settings["eval_shots"])
    tasks = Sinusoid(**settings["task"], support_shots=shots, query_shots=1)
    batch = tasks.sample(num_tasks, tf.constant([seed, 0], tf.int64))
    amplitude, phase = tasks.sample_parameters(num_tasks, tf.random.experimental.stateless_split(
        tf.constant([seed, 0], tf.int64), 3)[0])
    grid = np.linspace(*settings["task"]["x_range"], 200).astype("float32")[:, None]
    steps = max(settings["eval_steps"])
    fig, axes = plt.subplots(1, num_tasks, figsize=(5 * num_tasks, 4.4), sharey=True)
    styles = {"maml": "C0", "fomaml": "C2", "pretrained_finetune": "C3"}
    for i, ax in enumerate(np.atleast_1d(axes)):
        sx, sy = batch["support_x"][i].numpy(), batch["support_y"][i].numpy()
        truth = Sinusoid.function(grid, float(amplitude[i]), float(phase[i]))
        ax.plot(grid, truth, "k-", lw=2, label="truth")
        for method, learner in learners.items():
            for s, dash in ((1, ":"), (steps, "--")):
                model = learner.adapt(sx, sy, steps=s)
                pred = model(grid, training=False).numpy()
                ax.plot(grid, pred, dash, color=styles.get(method), label=f"{method}, {s} step(s)")
        ax.plot(sx, sy, "k^", ms=8, label=f"support (K={shots})")
        ax.set_title(f"task {i + 1}: A={float(amplitude[i]):.2f}, phase={float(phase[i]):.2f}")
        ax.set_xlabel("x")
    np.atleast_1d(axes)[0].set_ylabel("y")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _show_predictions(learner, settings, seed):
    """Prints one adapted task: the support set and predictions on a grid."""
    shots = max(settings["eval_shots"])
    tasks = Sinusoid(**settings["task"], support_shots=shots, query_shots=1)
    key = tf.constant([seed, 7], tf.int64)
    batch = tasks.sample(1, key)
    amplitude, phase = tasks.sample_parameters(
        1, tf.random.experimental.stateless_split(key, 3)[0])
    adapted = learner.adapt(batch["support_x"][0], batch["support_y"][0], steps=10)
    grid = np.linspace(-4.5, 4.5, 7).astype("float32")[:, None]
    pred = adapted(grid, training=False).numpy()[:, 0]
    truth = Sinusoid.function(grid[:, 0], float(amplitude[0]), float(phase[0]))
    print(f"\nMAML adapted to a new task (A={float(amplitude[0]):.2f}, "
          f"phase={float(phase[0]):.2f}) from {shots} points in 10 steps:")
    print("     x   " + " ".join(f"{v:6.2f}" for v in grid[:, 0]))
    print("  true   " + " ".join(f"{v:6.2f}" for v in np.asarray(truth)))
    print("  pred   " + " ".join(f"{v:6.2f}" for v in pred))
