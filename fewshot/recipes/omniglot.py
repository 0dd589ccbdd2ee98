"""The Omniglot recipe: one algorithm, one N-way K-shot cell per run.

    fewshot run recipes/omniglot --algorithm protonet --ways 5 --shots 1 \\
        --data-dir DIR --out OUT [--time-budget MINUTES]

Trains on the meta-train characters (with rotations), picks the checkpoint
with the best validation value (``monitor``: accuracy, or loss for ProtoNet as
Snell et al.; ``patience`` epochs without a better one stop the run), and
reports test accuracy over 600
episodes with 95% intervals in ``OUT/results.json`` (merged with the cells
already there). Each cell keeps its state in ``OUT/<algorithm>_<N>w<K>s/``:
a `BackupAndRestore` backup, the best model, and ``curve.csv`` (epoch,
cumulative training minutes, loss and accuracies); running the same command
again resumes from the backup. ``--time-budget`` stops training (at an epoch
end) after that many minutes of this invocation, then evaluates.

``--trainval`` then trains the model again from scratch on all meta-train
characters, the validation ones included, for the epoch at which the
validation run peaked plus ``patience`` (as long as the validation run ran:
Snell et al. 2017 report their numbers this way), in ``OUT/<cell>_trainval/``,
and tests its final weights; with
``--epochs N`` it trains N epochs without reading a validation run (for
example with another ``--seed``, for the count an earlier run chose). By default the
test classes include the rotations of the test characters (1692 classes,
Vinyals et al. 2016 and Snell et al. 2017); ``--no-test-rotations`` tests on
the 423 unrotated characters. ``--eval-only`` tests a cell's saved model
without training.
"""

import argparse
import csv
import json
import pathlib
import sys

import keras
import numpy as np
import tensorflow as tf

from fewshot.algorithms.maml import MAML
from fewshot.algorithms.task_retrieval import TaskRetrieval
from fewshot.callbacks import TimeBudget
from fewshot.datasets.omniglot import RESAMPLES, load_omniglot, omniglot_splits
from fewshot.episodes.sampler import EpisodeSampler
from fewshot.metrics import mean_ci95
from fewshot.recipes.console import say
from fewshot.recipes.episodic import (
    METRIC_LEARNERS,
    MONITORS,
    CurveLogger,
    CurvePatience,
    best_epoch,
    build_learner,
    evaluate_accuracy,
    stack_batches,
)
from fewshot.recipes.results import markdown_table, write_results
from fewshot.threads import set_task_parallel_threads_or_warn
from fewshot.validation import is_int

METHODS = ("maml", "fomaml", "metasgd", "reptile", "anil", "protonet", "siamese", "task_retrieval")
INITS = ("keras", "pytorch")
VALIDATION_SEED = 1_000_003
TEST_SEED = 2_000_003
CHOICE_SEED = 3_000_003


def add_arguments(parser):
    parser.add_argument("--algorithm", required=True, choices=METHODS, help="the method to train")
    parser.add_argument("--ways", type=int, default=5, help="N of the test cell (5 or 20)")
    parser.add_argument("--shots", type=int, default=1, help="K of the test cell (1 or 5)")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder with images_background.zip and images_evaluation.zip "
        "(default $FEWSHOT_OMNIGLOT_DIR, else tfds.load('omniglot'))",
    )
    parser.add_argument("--time-budget", type=float, default=None, help="minutes of training in this run")
    parser.add_argument("--epochs", type=int, default=None, help="override the maximum number of epochs")
    parser.add_argument(
        "--eval-ways",
        type=int,
        nargs="+",
        default=None,
        help="also test the trained model on these N (same K), e.g. --eval-ways 5 20",
    )
    parser.add_argument("--test-episodes", type=int, default=None, help="test episodes (600)")
    parser.add_argument(
        "--test-rotations",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="test classes include the test characters' rotations, as Vinyals et al. and "
        "Snell et al. (default: [eval] test_rotations, true)",
    )
    parser.add_argument(
        "--trainval",
        action="store_true",
        help="after the validation run: train again from scratch on the training and "
        "validation characters for the validation run's best epoch (by the recipe's monitor, "
        "in its curve.csv in OUT) plus the recipe's patience, as Snell et al.'s code does "
        "(--epochs N gives the count instead, e.g. one chosen by an earlier run), and test that model",
    )
    parser.add_argument(
        "--eval-only", action="store_true", help="test the cell's saved model without training"
    )
    parser.add_argument(
        "--choose-eval-steps",
        type=int,
        nargs="+",
        default=None,
        metavar="STEPS",
        help="MAML family: test with the inner step count among these that scores best on "
        "choice_episodes (500) validation episodes, e.g. --choose-eval-steps 1 2 3 5 (default: "
        "the recipe's choose_eval_steps, ANIL's [1, 2, 3, 5]; without it, or under --trainval, "
        "eval_steps, 3); recorded in results.json",
    )
    parser.add_argument("--cache-dir", default=None, help="where decoded images are cached")
    parser.add_argument(
        "--resample",
        choices=RESAMPLES,
        default=None,
        help="how drawings become 28x28: lanczos (antialiased grey levels) or nearest (binary "
        "strokes, as Snell et al.'s loader made them) (default: [data] resample, lanczos); "
        "use a separate --out for each",
    )
    parser.add_argument(
        "--lr-drop",
        nargs=2,
        action="append",
        metavar=("EPOCH", "LR"),
        default=None,
        help="a step decay of the outer learning rate: the epochs after EPOCH train with LR "
        "(e.g. 1e-4 once the validation curve has levelled off); repeat it for more drops. "
        "The cell's folder keeps its drops (lr_drop.txt), so later resumes and --eval-only "
        "need not repeat them; a later run may add a drop, at or after the epochs already trained",
    )
    parser.add_argument(
        "--meta-init",
        default=None,
        metavar="MODEL",
        help="task_retrieval only: take the meta-initialisation from a trained maml or fomaml "
        "cell's model (e.g. OUT/fomaml_5w1s/best.keras) instead of training one. TaskRetrieval "
        "meta-trains exactly as first-order MAML does (its memory plays no part), so with a "
        "fomaml model the cell only fills its memory and is tested on the same test episodes "
        "as that model: the difference is what retrieval adds. The folder keeps the source "
        "(meta_init.txt); its training minutes are the source's",
    )
    parser.add_argument(
        "--init",
        choices=INITS,
        default=None,
        help="layer defaults: keras (Glorot-uniform convolutions, BatchNorm epsilon 1e-3 and "
        "momentum 0.99, Adam epsilon 1e-7) or pytorch (Snell et al.'s framework: convolutions "
        "uniform in +-1/sqrt(fan_in), BatchNorm epsilon 1e-5 and momentum 0.9, Adam epsilon 1e-8) "
        "(default: [train] init, keras); use a separate --out for each",
    )


def run(config, args):
    settings = recipe_settings(config, args)
    _set_threads(settings)
    out = pathlib.Path(args.out)
    cell = f"{settings['algorithm']}_{settings['ways']}w{settings['shots']}s"
    work = out / (cell + "_trainval" if settings["trainval"] else cell)
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    keras.utils.set_random_seed(settings["seed"])
    if settings["trainval"] and args.epochs is None:
        settings["epochs"] = _trainval_epochs(out / cell / "curve.csv", cell, settings)
    model_path = work / ("final.keras" if settings["trainval"] else "best.keras")
    if settings["eval_only"] and not model_path.is_file():
        raise FileNotFoundError(
            f"--eval-only needs a trained model. Received: --out {out}, where {model_path} does not exist"
        )
    work.mkdir(parents=True, exist_ok=True)
    for name in _FOLDER_SETTINGS:
        if not (name == "monitor" and settings["trainval"]):  # a refit validates nothing
            _check_folder_setting(work, name, settings[name] or "none")
    settings["lr_drop"] = _folder_lr_drop(work, settings["lr_drop"])

    data = load_omniglot(args.data_dir, cache_dir=args.cache_dir, resample=settings["resample"])
    train_idx, val_idx, test_idx = omniglot_splits(
        data.num_characters, settings["validation_characters"], settings["train_characters"]
    )
    if settings["trainval"]:
        train_idx = np.concatenate([train_idx, val_idx])
    test_rotations = (0, 1, 2, 3) if settings["test_rotations"] else (0,)
    test_x, test_y = data.arrays(test_idx, rotations=test_rotations)
    say(args, f"Omniglot from {data.source}: {len(train_idx)} meta-train characters x 4 rotations"
               f"{'' if settings['trainval'] else f', {len(val_idx)} validation'}, {len(test_idx)} test "
               f"characters ({len(np.unique(test_y))} test classes)")

    if settings["algorithm"] == "task_retrieval":
        meta_init = _folder_meta_init(work, settings.pop("meta_init", None))
        if meta_init is not None:
            settings["meta_init"] = meta_init
    if settings["eval_only"]:
        learner = keras.models.load_model(model_path)
    elif "meta_init" in settings:
        learner = _from_meta_init(settings, test_x.shape[1:], work, args)
    else:
        learner = _train(settings, data, train_idx, val_idx, work, cell, args, verbose)
        if learner is None:
            return {}
    if settings["choose_eval_steps"]:
        val_x, val_y = data.arrays(val_idx)
        scores = validation_accuracy_by_steps(learner, val_x, val_y, settings)
        settings["eval_steps"] = max(scores, key=lambda steps: (scores[steps], -steps))
        settings["eval_steps_validation"] = {str(k): v for k, v in scores.items()}
        say(args, "validation accuracy by inner steps: "
                   + ", ".join(f"{k}: {v:.2f}" for k, v in scores.items())
                   + f"; testing with {settings['eval_steps']}")
    if settings["algorithm"] == "task_retrieval":
        fill_memory(learner, validation_sampler(settings, data, val_idx), settings)
    metrics = {}
    for ways in settings["eval_ways"]:
        accs = evaluate_accuracy(
            learner, test_x, test_y, ways, settings["shots"],
            settings["test_episodes"], settings, seed=settings["seed"] + TEST_SEED,
        )
        name = f"acc_{ways}w{settings['shots']}s"
        metrics[name] = mean_ci95(100.0 * accs)
        say(args, f"test {name}: {metrics[name][0]:.2f} ± {metrics[name][1]:.2f} "
                   f"({len(accs)} episodes)")
    # A --meta-init cell was trained where its source was.
    clock = pathlib.Path(settings["meta_init"]).parent if settings.get("meta_init") else work
    minutes = CurveLogger.total_minutes(clock / "clock.json")
    _merge_results(out, settings, metrics, minutes)
    return metrics


def _train(settings, data, train_idx, val_idx, work, cell, args, verbose):
    """Trains (or resumes) the cell; returns the model to test (None: not finished)."""
    train_x, train_y = data.arrays(train_idx, rotations=(0, 1, 2, 3))
    learner = build_learner(settings, input_shape=train_x.shape[1:])
    sampler = EpisodeSampler(
        train_x, train_y, ways=settings["train_ways"], shots=settings["train_shots"],
        queries=settings["train_queries"],
    )
    stream = sampler.stream(settings["meta_batch_size"], settings["batches_per_epoch"], seed=settings["seed"])
    curve = work / "curve.csv"
    callbacks = [
        keras.callbacks.BackupAndRestore(str(work / "backup"), delete_checkpoint=False),
        CurveLogger(curve, work / "clock.json"),
    ]
    if settings["time_budget"] is not None:
        callbacks.append(TimeBudget(60.0 * settings["time_budget"]))
    if settings["lr_drop"] is not None:
        # After CurveLogger: the scheduler's `learning_rate` log entry stays out of curve.csv.
        callbacks.append(keras.callbacks.LearningRateScheduler(_step_decay(settings)))
    val_data = None
    best_path = work / "best.keras"
    if not settings["trainval"]:
        val_stream = validation_sampler(settings, data, val_idx).stream(
            settings["eval_batch"], 1, seed=settings["seed"] + VALIDATION_SEED
        )
        num_val = max(1, settings["validation_episodes"] // settings["eval_batch"])
        val_data = tf.data.Dataset.from_tensor_slices(stack_batches(val_stream.take(num_val)))
        monitor = settings["monitor"]
        best = best_epoch(curve, monitor) if best_path.is_file() else None
        callbacks.insert(1, keras.callbacks.ModelCheckpoint(
            str(best_path), monitor=monitor, mode=MONITORS[monitor], save_best_only=True,
            initial_value_threshold=None if best is None else best[1],
        ))
        if settings["patience"]:
            patience = CurvePatience(curve, monitor, settings["patience"])
            callbacks.append(patience)  # after CurveLogger, whose row it reads
            if patience.exhausted(_epochs_done(work)) and best_path.is_file():
                say(args, f"{work.name} stopped earlier (patience {settings['patience']}): testing its best model")
                return keras.models.load_model(best_path)
    say(args, f"\n== training {work.name}: {settings['train_ways']}-way {settings['train_shots']}-shot "
               f"{settings['train_queries']}-query, up to {settings['epochs']} epochs of "
               f"{settings['batches_per_epoch']} batches ==")
    learner.fit(stream, epochs=settings["epochs"], validation_data=val_data, callbacks=callbacks, verbose=verbose)
    if not settings["trainval"]:
        return keras.models.load_model(best_path) if best_path.is_file() else learner
    done = _epochs_done(work)
    if done < settings["epochs"]:
        print(f"--trainval stopped at epoch {done} of {settings['epochs']} (time budget): not "
              "tested; run the same command again to resume from the backup", flush=True)
        return None
    learner.save(work / "final.keras")
    return learner


def _epochs_done(work):
    return CurveLogger.epochs_done(work / "clock.json")


def _step_decay(settings):
    """The `LearningRateScheduler` schedule of `lr_drop`: `outer_lr`, then each drop's rate from its epoch."""

    def rate(epoch, lr):
        current = settings["outer_lr"]
        for after, low in settings["lr_drop"]:
            if epoch >= after:
                current = low
        return current

    return rate


def _folder_lr_drop(work, given):
    """The cell's `--lr-drop` list: the folder's drops plus any new ones given.

    The folder keeps them in ``lr_drop.txt`` (one ``EPOCH LR`` per line). A
    run may add drops after the folder's, each at or after the epochs
    already trained (the curve would otherwise misstate the rate those
    epochs had), and may not change the folder's.
    """
    marker = work / "lr_drop.txt"
    held = []
    if marker.is_file():
        held = [(int(e), float(lr)) for e, lr in (line.split() for line in marker.read_text().splitlines())]
    if given is None or given == held:
        return held or None
    if given[: len(held)] != held:
        raise ValueError(
            f"Invalid value received for --lr-drop: {work} was trained with {_drop_flags(held)}; "
            f"a run may only add drops after those. Give another --out. Received: {_drop_flags(given)}"
        )
    done = _epochs_done(work)
    if given[len(held)][0] < done:
        raise ValueError(
            f"Invalid value received for --lr-drop: {work} has trained {done} epochs, so a new "
            f"drop cannot start before epoch {done}. Received: {_drop_flags(given)}"
        )
    marker.write_text("".join(f"{e} {lr!r}\n" for e, lr in given))
    return given


def _drop_flags(drops):
    """`[(epoch, lr), ...]` as the command-line flags that give them."""
    return " ".join(f"--lr-drop {epoch} {lr:g}" for epoch, lr in drops)


def validation_sampler(settings, data, val_idx):
    """Episodes of the cell's N-way K-shot on the validation characters (unrotated)."""
    val_x, val_y = data.arrays(val_idx)
    return EpisodeSampler(val_x, val_y, ways=settings["ways"], shots=settings["shots"], queries=settings["eval_queries"])


def _trainval_epochs(curve, cell, settings):
    """The refit's length: the validation run's best epoch (by `monitor`) plus `patience`.

    Snell et al.'s trainval.py trains the refit for the epoch of the lowest
    validation loss plus their patience (200): as long as the validation
    run, which stopped after `patience` epochs without a lower loss, ran.
    """
    best = best_epoch(curve, settings["monitor"])
    if best is None:
        raise FileNotFoundError(
            f"--trainval needs the validation run of {cell} first (it chooses the epoch count). "
            f"Received: no validation curve at {curve}"
        )
    return best[0] + settings["patience"]


# ----------------------------------------------------------------- settings
def recipe_settings(config, args):
    """One cell's settings: recipe.toml's sections (the algorithm's last), then the command line.

    A section's ``[SECTION.N-way]`` table overrides that section's keys for N-way cells
    (`ways_table` names it): the recipe gives MAML Finn et al.'s 20-way settings this way, and
    Reptile Nichol et al.'s one pass over each 20-way training task.

    Example:

    >>> import argparse
    >>> from fewshot.recipes.config import load_recipe
    >>> from fewshot.recipes.omniglot import add_arguments, recipe_settings
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> s = recipe_settings(load_recipe("recipes/omniglot"), parser.parse_args(["--algorithm", "reptile"]))
    >>> s["ways"], s["shots"], s["train_shots"], s["meta_batch_size"], s["eval_steps"]
    (5, 1, 10, 5, 10)
    >>> anil = parser.parse_args(["--algorithm", "anil", "--ways", "20"])
    >>> recipe_settings(load_recipe("recipes/omniglot"), anil)["choose_eval_steps"]
    [1, 2, 3, 5]
    >>> anil.trainval = True  # no validation characters left: the recipe's eval_steps
    >>> s = recipe_settings(load_recipe("recipes/omniglot"), anil)
    >>> s["choose_eval_steps"], s["eval_steps"]
    (None, 5)
    >>> maml = parser.parse_args(["--algorithm", "maml", "--ways", "20"])
    >>> s = recipe_settings(load_recipe("recipes/omniglot"), maml)
    >>> s["ways_table"], s["inner_lr"], s["inner_steps"], s["eval_steps"], s["meta_batch_size"]
    ('maml.20-way', 0.1, 5, 5, 16)
    >>> reptile = parser.parse_args(["--algorithm", "reptile", "--ways", "20"])
    >>> s = recipe_settings(load_recipe("recipes/omniglot"), reptile)
    >>> s["ways_table"], s["train_shots"], s["inner_batch_size"], s["inner_steps"]
    ('reptile.20-way', 10, 20, 10)
    """
    algorithm = args.algorithm
    s = {"seed": int(config.get("seed", 0)), "algorithm": algorithm}
    ways = _positive("ways", args.ways)
    s["ways_table"] = None
    for section in ("data", "train", "eval", algorithm):
        table = config.get(section, {})
        s.update({k: v for k, v in table.items() if not isinstance(v, dict)})
        s.update(_ways_table(section, table, ways, s))
    s["ways"], s["shots"] = ways, _positive("shots", args.shots)
    s.setdefault("train_ways", s["ways"])
    if s["train_ways"] < s["ways"]:
        s["train_ways"] = s["ways"]
    if algorithm not in METRIC_LEARNERS:
        s["train_ways"] = s["ways"]  # the head has one output per class
    s["train_shots"] = s.get("train_shots", s["shots"])
    if not is_int(s["train_shots"], s["shots"]):
        raise ValueError(
            f"Invalid value received for train_shots. Expected an integer >= the cell's "
            f"{s['shots']} shots (support examples per class in training episodes). "
            f"Received: {s['train_shots']!r}"
        )
    if args.epochs is not None:
        s["epochs"] = _positive("epochs", args.epochs)
    if args.test_episodes is not None:
        s["test_episodes"] = _positive("test-episodes", args.test_episodes)
    s["eval_ways"] = sorted(set(_positive("eval-ways", w) for w in (args.eval_ways or [s["ways"]])))
    if algorithm not in METRIC_LEARNERS and s["eval_ways"] != [s["ways"]]:
        raise ValueError(
            f"--eval-ways needs a metric learner (protonet, siamese): {algorithm} has "
            f"a {s['ways']}-way head. Received: --eval-ways {s['eval_ways']}"
        )
    s["time_budget"] = args.time_budget
    s["resample"] = args.resample or s.get("resample", "lanczos")
    if s["resample"] not in RESAMPLES:
        raise ValueError(
            f"Invalid value received for [data] resample. Expected one of {list(RESAMPLES)}. "
            f"Received: {s['resample']!r}"
        )
    s["init"] = args.init or s.get("init", "keras")
    if s["init"] not in INITS:
        raise ValueError(
            f"Invalid value received for [train] init. Expected one of {list(INITS)}. "
            f"Received: {s['init']!r}"
        )
    s["monitor"] = s.get("monitor", "val_accuracy")
    if s["monitor"] not in MONITORS:
        raise ValueError(
            f"Invalid value received for monitor. Expected one of {list(MONITORS)}. "
            f"Received: {s['monitor']!r}"
        )
    s["patience"] = s.get("patience", 0)
    if not is_int(s["patience"], 0):
        raise ValueError(
            f"Invalid value received for patience. Expected an integer >= 0 (epochs; 0: no early "
            f"stopping). Received: {s['patience']!r}"
        )
    s["test_rotations"] = bool(s.get("test_rotations", True) if args.test_rotations is None else args.test_rotations)
    s["trainval"], s["eval_only"] = bool(args.trainval), bool(args.eval_only)
    s["choose_eval_steps"] = _parse_choose_eval_steps(args.choose_eval_steps, s)
    s["lr_drop"] = _parse_lr_drop(args.lr_drop, s)
    if args.meta_init is not None:  # recorded in results.json only when given
        s["meta_init"] = _parse_meta_init(args.meta_init, s)
    if args.time_budget is not None and not args.time_budget > 0:
        raise ValueError(f"Invalid value received for --time-budget. Expected positive minutes. Received: {args.time_budget}")
    return s


def _ways_table(section, table, ways, s):
    """The keys of `table`'s ``[SECTION.N-way]`` sub-table for this cell's N, or {}.

    Such a table overrides its section's keys for N-way cells only (e.g. Finn et al.'s 20-way
    MAML settings); `s["ways_table"]` names the last one used. Any other sub-table is an error.
    """
    chosen = {}
    for name, value in table.items():
        if not isinstance(value, dict):
            continue
        n = name[: -len("-way")] if name.endswith("-way") else ""
        if not (n.isdigit() and int(n) > 0) or any(isinstance(v, dict) for v in value.values()):
            raise ValueError(
                f"Invalid table received in recipe.toml: [{section}.{name}]. Expected a section's "
                f"settings or one [SECTION.N-way] table of them per N (e.g. [maml.20-way])."
            )
        if int(n) == ways:
            chosen = value
            s["ways_table"] = f"{section}.{name}"
    return chosen


def _parse_meta_init(path, s):
    """--meta-init: an existing file, for a task_retrieval cell that is not a refit."""
    if s["algorithm"] != "task_retrieval" or s["trainval"] or s["lr_drop"]:
        given = "--trainval" if s["trainval"] else "--lr-drop" if s["lr_drop"] else f"--algorithm {s['algorithm']}"
        raise ValueError(
            "--meta-init gives a task_retrieval cell its meta-initialisation instead of training "
            f"one, so it goes with --algorithm task_retrieval and no training options. "
            f"Received: --meta-init {path} with {given}"
        )
    resolved = pathlib.Path(path).expanduser().resolve()
    if not resolved.exists():
        raise FileNotFoundError(
            f"Invalid value received for --meta-init: no such model. Received: --meta-init {path}"
        )
    return str(resolved)


def _parse_choose_eval_steps(values, s):
    """`--choose-eval-steps` (or `choose_eval_steps`) as a sorted list of step counts, or None.

    A `--trainval` refit has no validation characters left to choose on: the flag is refused
    there, while the recipe's key (a default, e.g. ANIL's) gives way to `eval_steps`.
    """
    given = "--choose-eval-steps" if values is not None else "choose_eval_steps"
    values = s.get("choose_eval_steps") if values is None else values
    if not values:
        return None
    if not isinstance(values, list) or not all(is_int(v, 1) for v in values):
        raise ValueError(
            f"Invalid value received for {given}. Expected a list of positive integers "
            f"(inner step counts). Received: {values!r}"
        )
    if s["algorithm"] in METRIC_LEARNERS + ("task_retrieval",):
        why = "its memory holds the validation tasks" if s["algorithm"] == "task_retrieval" else \
            "it does not adapt by gradient steps"
        raise ValueError(
            f"{given} chooses the MAML family's test-time inner steps on validation episodes; "
            f"{s['algorithm']} has none to choose ({why}). Received: --algorithm {s['algorithm']}"
        )
    if s["trainval"] and given == "choose_eval_steps":
        return None
    if s["trainval"]:
        raise ValueError(
            f"{given} needs the validation characters, which --trainval trains on. "
            f"Received: --trainval with {given} {values}"
        )
    episodes = s.setdefault("choice_episodes", 500)
    if not is_int(episodes, 1):
        raise ValueError(
            f"Invalid value received for choice_episodes. Expected a positive integer "
            f"(validation episodes per step count). Received: {episodes!r}"
        )
    return sorted(set(values))


def _parse_lr_drop(values, s):
    """`--lr-drop EPOCH LR` (repeatable) as a list of (int, float) in epoch order, or None."""
    if values is None:
        return None
    shown = " ".join(f"--lr-drop {e} {lr}" for e, lr in values)
    drops = []
    for epoch, lr in values:
        try:
            epoch, lr = int(epoch), float(lr)
        except ValueError:
            epoch, lr = -1, float("nan")
        if epoch < 0 or not 0 < lr < float("inf") or (drops and epoch <= drops[-1][0]):
            raise ValueError(
                "Invalid value received for --lr-drop. Expected EPOCH LR: an integer >= 0, "
                "increasing from one drop to the next, and a positive learning rate. "
                f"Received: {shown}"
            )
        drops.append((epoch, lr))
    if s.get("lr_halve_every"):
        raise ValueError(
            f"--lr-drop needs a constant outer learning rate, but {s['algorithm']} halves it every "
            f"{s['lr_halve_every']} steps (lr_halve_every). Received: {shown}"
        )
    return drops


def _check_folder_setting(work, name, value):
    """Refuses to resume or test a cell's folder with another `name` than it was trained with.

    The folder keeps the value in ``<name>.txt``. Folders from before the
    setting existed were trained with its default (``lanczos`` images,
    ``keras`` layer defaults, best checkpoint by ``val_accuracy``, no
    ``[SECTION.N-way]`` table).
    """
    default, held, given = _FOLDER_SETTINGS[name]
    before = _folder_value(work, name)
    if before is None and (work / "clock.json").is_file():
        before = default
    if before is not None and before != value:
        raise ValueError(
            f"Invalid value received for {given}: {work} holds a model {held.format(before)}. "
            f"Give another --out. Received: {given} {value}"
        )
    (work / f"{name}.txt").write_text(value + "\n")


def _folder_value(folder, name):
    """The value a cell's folder keeps for `name` (``<name>.txt``), or None if it keeps none."""
    marker = pathlib.Path(folder) / f"{name}.txt"
    return marker.read_text().strip() if marker.is_file() else None


# Settings a cell's folder is tied to: (the value before it was recorded, what the folder
# holds, where the setting is given).
_FOLDER_SETTINGS = {
    "resample": ("lanczos", "trained on {!r} images", "--resample"),
    "init": ("keras", "trained with {!r} layer defaults", "--init"),
    "monitor": ("val_accuracy", "chosen by {!r}", "monitor (recipe.toml)"),
    "ways_table": ("none", "trained with the recipe's N-way table {!r}",
                   "[SECTION.N-way] (recipe.toml), whose keys override its section's"),
}


def _set_threads(s):
    """`task_parallel_threads`: one thread per op and one op per core, so the tasks of a chunk
    run side by side (`fewshot.threads`; Conv4 MAML on 2 cores: 1.4-1.7x, benchmarks/README.md).
    Only a fresh process can change TensorFlow's pools; otherwise a warning, and the defaults."""
    if s.get("task_parallel_threads"):
        set_task_parallel_threads_or_warn(setting="task_parallel_threads = true")


def _positive(flag, value):
    if value < 1:
        raise ValueError(f"Invalid value received for --{flag}. Expected a positive integer. Received: {value}")
    return value



# --------------------------------------------------------------- evaluation
def validation_accuracy_by_steps(learner, val_x, val_y, s):
    """Validation accuracy (percent) of each inner step count in `s["choose_eval_steps"]`.

    Every count is scored on the same `choice_episodes` episodes of the
    validation characters (a seed of their own, apart from those of the
    training's validation and of the test), so the test's step count is
    chosen without looking at the test.

    Returns:
        ``{steps: mean accuracy in percent}``, in the order of the counts.
    """
    scores = {}
    for steps in s["choose_eval_steps"]:
        accs = evaluate_accuracy(
            learner, val_x, val_y, s["ways"], s["shots"], s["choice_episodes"],
            {**s, "eval_steps": steps}, seed=s["seed"] + CHOICE_SEED,
        )
        scores[steps] = round(100.0 * float(np.mean(accs)), 4)
    return scores


def _folder_meta_init(work, given):
    """The cell's --meta-init source: `given`, or the one its folder keeps (None: trained here).

    A folder holds one kind of task_retrieval cell: one trained in it
    (``clock.json``) or one whose weights came from a source model
    (``meta_init.txt``, written once the source has been read), and then
    always the same source.
    """
    before = _folder_value(work, "meta_init")
    if given is None:
        return before
    if before is None and (work / "clock.json").is_file():
        raise ValueError(
            f"Invalid value received for --meta-init: {work} holds a task_retrieval model "
            f"trained there. Give another --out. Received: --meta-init {given}"
        )
    if before is not None and before != given:
        raise ValueError(
            f"Invalid value received for --meta-init: {work} holds a model whose "
            f"meta-initialisation came from {before}. Give another --out. Received: --meta-init {given}"
        )
    return given


def task_retrieval_from(s, source_path, input_shape):
    """The recipe's TaskRetrieval learner, with the meta-weights of the model at `source_path`.

    The source must adapt as the cell does: a `fewshot.MAML` (either
    order) or TaskRetrieval with the same inner step size, BatchNorm mode
    and adapted layers, and a backbone of the same shapes (the same N-way
    head); if it sits in a recipe cell's folder, that cell's images and
    layer defaults (``resample.txt``, ``init.txt``) must be the cell's
    settings too. The memory starts empty, so until `fill_memory` the learner
    adapts exactly as the source does.

    Args:
        s: the cell's settings (`recipe_settings`).
        source_path: a saved ``.keras`` model.
        input_shape: one image's shape, ``(28, 28, 1)``.

    Raises:
        ValueError: naming --meta-init, if the file is not a Keras model or
            the model does not adapt as the cell does.
    """
    try:
        source = keras.models.load_model(source_path)
    except Exception as error:  # a file Keras cannot read: say which, and why
        raise ValueError(
            f"Invalid value received for --meta-init: {source_path} is not a saved Keras model "
            f"({type(error).__name__}: {error}). Received: --meta-init {source_path}"
        ) from None
    learner = build_learner({**s, "algorithm": "task_retrieval"}, input_shape=input_shape)
    problem = None
    if type(source) not in (MAML, TaskRetrieval):
        problem = f"it is a {type(source).__name__}, not a MAML or first-order MAML model"
    else:
        for name in ("inner_lr", "batch_norm", "adapt_layers"):
            mine, theirs = getattr(learner, name), getattr(source, name)
            if mine != theirs:
                problem = f"its {name} is {theirs!r}, this cell's {mine!r}"
                break
        else:
            shapes = [tuple(w.shape) for w in source.backbone.weights]
            if shapes != [tuple(w.shape) for w in learner.backbone.weights]:
                problem = (f"its backbone's weights do not match this cell's {s['ways']}-way "
                           "Conv4 (another N-way head?)")
    for name in ("resample", "init"):  # what the source's cell folder says it was trained with
        held = _folder_value(pathlib.Path(source_path).parent, name)
        if problem is None and held is not None and held != s[name]:
            problem = (f"its cell was {_FOLDER_SETTINGS[name][1].format(held)}, "
                       f"this cell uses {s[name]!r} ({_FOLDER_SETTINGS[name][2]})")
    if problem:
        raise ValueError(
            f"Invalid value received for --meta-init: {problem}. Received: --meta-init {source_path}"
        )
    learner.backbone.set_weights(source.backbone.get_weights())
    return learner


def _from_meta_init(s, input_shape, work, args):
    """`task_retrieval_from` the cell's --meta-init, saved as the cell's ``best.keras``."""
    learner = task_retrieval_from(s, s["meta_init"], input_shape)
    say(args, f"{work.name}: meta-initialisation from {s['meta_init']}; not trained here")
    learner.save(work / "best.keras")
    (work / "meta_init.txt").write_text(s["meta_init"] + "\n")  # once the source is known good
    return learner


def fill_memory(learner, sampler, s):
    """Remembers `memory_size` validation tasks, adapted with `eval_steps` steps.

    The tasks are drawn from `sampler` (`validation_sampler`) with a seed of
    their own, so every run with the same settings remembers the same ones.
    """
    learner.forget()
    batch = sampler.sample(learner.memory_size, tf.constant([s["seed"] + VALIDATION_SEED, 99], tf.int64))
    for i in range(learner.memory_size):
        learner.remember(batch["support_x"][i], batch["support_y"][i], steps=s.get("eval_steps", learner.inner_steps))


def _merge_results(out, settings, metrics, minutes):
    path = out / "results.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    config, merged = merge_cell_results(previous, settings, metrics, minutes)
    write_results(out, "omniglot", "Omniglot (Lake et al. 2015), 28x28, 1200/423 character split", config, merged)
    names = ["acc_5w1s", "acc_5w5s", "acc_20w1s", "acc_20w5s"]
    order = [m for m in METHODS if m in merged]
    (out / "results.md").write_text(
        "Omniglot test accuracy % (mean ± 95% interval over the test episodes)\n\n"
        + markdown_table(merged, names, methods=order, fmt="{:.2f}") + "\n"
    )
    plot_learning_curves(out, out / "learning_curves.png")


def merge_cell_results(previous, settings, metrics, minutes):
    """Merges one cell's test metrics into a results.json payload.

    Every cell's own numbers stay in ``config.cells[CELL].test``. The
    headline ``metrics[ALGORITHM][acc_NwKs]`` is one cell's, chosen by a
    rule that does not depend on the order the cells ran in: a cell trained
    at that N-way before one that only tests at it (``--eval-ways``), then a
    ``_trainval`` refit before its validation run (so ``--eval-only`` of the
    validation cell cannot replace the final number), then the cell name
    first in sort order; a cell run again replaces its own numbers.
    ``config.metrics_source[ALGORITHM][acc_NwKs]`` names the cell each
    headline number comes from, and ``config.seed`` is the cells' seed (a
    sorted list if they differ), which `fewshot summarize` shows.

    Args:
        previous: the parsed results.json so far (``{}`` if none).
        settings: the cell's settings (``algorithm``, ``ways``, ``shots``,
            ``trainval``, ``seed``, ...).
        metrics: ``{acc_NwKs: (mean, half_width)}`` of this cell.
        minutes: the cell's cumulative training minutes.

    Returns:
        ``(config, metrics)`` for `write_results`: metrics as ``{method:
        {name: (mean, half_width)}}``.
    """
    merged = {}
    for method, values in previous.get("metrics", {}).items():
        merged[method] = {
            k: (v, values.get(k + "_ci95")) for k, v in values.items() if not k.endswith("_ci95")
        }
    config = dict(previous.get("config", {}))
    cells = dict(config.get("cells", {}))
    algorithm = settings["algorithm"]
    cell = f"{algorithm}_{settings['ways']}w{settings['shots']}s"
    cell += "_trainval" if settings["trainval"] else ""
    sources = {m: dict(v) for m, v in config.get("metrics_source", {}).items()}
    for name, value in merged.get(algorithm, {}).items():
        # A results.json written before sources were recorded: find the cell.
        if name not in sources.get(algorithm, {}):
            found = _source_cell(cells, algorithm, name, value[0])
            if found is not None:
                sources.setdefault(algorithm, {})[name] = found
    cells[cell] = {k: v for k, v in settings.items() if k not in ("time_budget", "eval_only")}
    cells[cell]["train_minutes"] = round(minutes, 1)
    cells[cell]["test"] = {k: [round(float(v), 4) for v in pair] for k, pair in metrics.items()}
    for name, value in metrics.items():
        current = sources.get(algorithm, {}).get(name)
        if current in (None, cell) or current not in cells or (
            _precedence(cells, cell, name) > _precedence(cells, current, name)
        ):
            merged.setdefault(algorithm, {})[name] = value
            sources.setdefault(algorithm, {})[name] = cell
    seeds = sorted({c["seed"] for c in cells.values() if isinstance(c.get("seed"), int)})
    config["seed"] = seeds[0] if len(seeds) == 1 else seeds
    config["cells"] = cells
    config["metrics_source"] = sources
    return config, merged


def _precedence(cells, cell, metric):
    """Sort key of `cell` as the source of `metric` (acc_NwKs): larger wins."""
    settings = cells[cell]
    ways = metric.split("_")[-1].split("w")[0]
    trained_at = str(settings.get("ways")) == ways
    # Negated name characters: among equals, the name first in sort order wins.
    return (trained_at, bool(settings.get("trainval")), [-ord(c) for c in cell] + [0])


def _source_cell(cells, algorithm, metric, value):
    """The cell whose test `metric` is `value` (to its 4 recorded decimals), or None."""
    found = [
        name for name, c in cells.items()
        if c.get("algorithm") == algorithm and metric in c.get("test", {})
        and abs(c["test"][metric][0] - round(float(value), 4)) < 1e-9
    ]
    return max(found, key=lambda name: _precedence(cells, name, metric)) if found else None


def read_curves(out):
    """Each cell's validation curve in `out`: {(ways, shots): {algorithm: (minutes, accuracy %)}}.

    Cells without validation (the ``_trainval`` refits) are left out.
    """
    curves = {}
    for path in sorted(pathlib.Path(out).glob("*/curve.csv")):
        algorithm, _, shape = path.parent.name.rpartition("_")
        if not algorithm or "w" not in shape or not shape.endswith("s"):
            continue
        ways, shots = shape[:-1].split("w")
        with path.open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("val_accuracy")]
        if rows and ways.isdigit() and shots.isdigit():
            minutes = np.array([float(r["minutes"]) for r in rows])
            accuracy = 100.0 * np.array([float(r["val_accuracy"]) for r in rows])
            curves.setdefault((int(ways), int(shots)), {})[algorithm] = (minutes, accuracy)
    return curves


def plot_learning_curves(out, path):
    """One panel per N-way K-shot cell: validation accuracy against training minutes."""
    curves = read_curves(out)
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = sorted(curves)
    # At least two panels wide, so that the title fits over a single cell.
    fig, axes = plt.subplots(1, len(cells), figsize=(4.2 * max(2, len(cells)), 3.6), squeeze=False)
    for ax, (ways, shots) in zip(axes[0], cells):
        for algorithm in [m for m in METHODS if m in curves[(ways, shots)]]:
            minutes, accuracy = curves[(ways, shots)][algorithm]
            ax.plot(minutes, accuracy, marker=".", label=algorithm)
        ax.axhline(100.0 / ways, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_title(f"{ways}-way {shots}-shot")
        ax.set_xlabel("training minutes (log)")
        ax.set_ylabel("validation accuracy %")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
    fig.suptitle("Omniglot learning curves (validation characters; dotted: chance)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
