"""The images recipe: few-shot classification of your own images, or of a TFDS dataset.

    fewshot run recipes/images --data-dir my_images --out runs/my_images
    fewshot run recipes/images --tfds cifar100 --channels 3 --image-size 32 32 --out runs/cifar100

`--data-dir` is a folder with one subfolder of images per class
(`fewshot.datasets.load_image_folder`); `--tfds NAME` reads a TensorFlow
Datasets split instead (`fewshot.datasets.load_tfds_classes`; ``--tfds-dir``
for a local copy). The classes are split 70/10/20 by the seed into
meta-train, validation and test classes, so the test measures what a new
user sees: classes the model never saw, each given by `--shots` examples.

One algorithm (``--algorithm``, default ``protonet``) is trained on a Conv4
encoder; the epoch with the best validation accuracy is kept (``patience``
epochs without a better one stop the run) in ``OUT/models/<algorithm>.keras``,
which `fewshot app` and `fewshot export` take. The test reports the N-way
K-shot accuracy over `test_episodes` episodes of the test classes with a 95%
interval, beside the same episodes classified by the nearest class mean of
the raw pixels (``pixels``: what the training added). ``OUT/results.json``,
``OUT/results.md`` and ``OUT/learning_curve.png`` are written; rerunning the
same command resumes from ``OUT/backup``. `evaluate_model` (``fewshot
evaluate``) tests a saved learner on the classes of another folder.
"""

import json
import os
import pathlib
import sys

import keras
import numpy as np
import tensorflow as tf

from fewshot.callbacks import TimeBudget
from fewshot.datasets.image_folder import load_image_folder
from fewshot.datasets.tfds_classes import load_tfds_classes
from fewshot.episodes.sampler import EpisodeSampler
from fewshot.episodes.splits import split_classes
from fewshot.metrics import mean_ci95
from fewshot.recipes.console import say
from fewshot.recipes.episodic import (
    CurveLogger,
    CurvePatience,
    METRIC_LEARNERS,
    best_epoch,
    build_learner,
    evaluate_accuracy,
    stack_batches,
)
from fewshot.recipes.results import markdown_table, write_results
from fewshot.validation import check_image_size, check_int, first_few

ALGORITHMS = ("protonet", "siamese", "maml", "fomaml", "metasgd", "anil", "reptile")
#: The environment variable read when --data-dir is not given.
DATA_DIR_ENV = "FEWSHOT_IMAGES_DIR"
_VALIDATION_SEED = 1_000_003
_TEST_SEED = 2_000_003


def add_arguments(parser):
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--data-dir", default=None,
        help=f"folder with one subfolder of images (png, jpg, gif, bmp) per class "
        f"(default ${DATA_DIR_ENV})",
    )
    source.add_argument("--tfds", default=None, metavar="NAME", help="a TFDS dataset instead, e.g. cifar100")
    parser.add_argument("--split", default="train", help="with --tfds: the split to read (default train)")
    parser.add_argument("--tfds-dir", default=None, help="with --tfds: TFDS's data_dir; a local copy there is read without the network")
    parser.add_argument("--algorithm", default=None, choices=ALGORITHMS, help="the method (default: [train] algorithm, protonet)")
    parser.add_argument("--ways", type=int, default=None, help="N classes per test episode (default 5)")
    parser.add_argument("--shots", type=int, default=None, help="K examples per class in the support set (default 1)")
    parser.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"), help="images are resized to H x W (default 28 28)")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=None, help="1 grayscale or 3 RGB (default 1)")
    parser.add_argument("--max-per-class", type=int, default=None, help="use at most this many images of each class")
    parser.add_argument("--epochs", type=int, default=None, help="the most epochs to train (default [train] epochs)")
    parser.add_argument("--time-budget", type=float, default=None, help="minutes of training in this run")
    parser.add_argument("--test-episodes", type=int, default=None, help="test episodes (default 600)")


def recipe_settings(config, args):
    """The run's settings: recipe.toml's sections, then the command line.

    Example:

    >>> import argparse
    >>> from fewshot.recipes.config import load_recipe
    >>> from fewshot.recipes.images import add_arguments, recipe_settings
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> s = recipe_settings(load_recipe("recipes/images"), parser.parse_args(["--ways", "3"]))
    >>> s["algorithm"], s["ways"], s["shots"], s["image_size"]
    ('protonet', 3, 1, (28, 28))
    """
    s = {"seed": int(config.get("seed", 0))}
    for section in ("data", "train", "eval"):
        s.update(config.get(section, {}))
    s["algorithm"] = args.algorithm or s.get("algorithm", "protonet")
    if s["algorithm"] not in ALGORITHMS:
        raise ValueError(
            f"Invalid value received for [train] algorithm. Expected one of {list(ALGORITHMS)}. "
            f"Received: {s['algorithm']!r}"
        )
    s.update(config.get(s["algorithm"], {}))
    for name, flag in (("ways", "--ways"), ("shots", "--shots"), ("epochs", "--epochs"),
                       ("test_episodes", "--test-episodes"), ("max_per_class", "--max-per-class")):
        given = getattr(args, name)
        if given is not None:
            s[name] = check_int(flag, given, minimum=1)
    s.setdefault("max_per_class", None)
    s["image_size"] = check_image_size("--image-size", args.image_size or s.get("image_size", (28, 28)))
    if min(s["image_size"]) < 16:
        raise ValueError(
            "Invalid value received for --image-size: Conv4 halves an image four times, so it "
            f"needs at least 16 x 16 pixels. Received: --image-size {s['image_size'][0]} {s['image_size'][1]}"
        )
    s["channels"] = args.channels or s.get("channels", 1)
    if args.time_budget is not None and not args.time_budget > 0:
        raise ValueError(f"Invalid value received for --time-budget. Expected positive minutes. Received: {args.time_budget}")
    s["time_budget"] = args.time_budget
    s["train_shots"] = s["shots"]
    # A metric learner trains on wider episodes than it is tested on (Snell et al.);
    # the others' head has one output per test class.
    s["train_ways"] = max(s["ways"], s.get("train_ways", s["ways"])) if s["algorithm"] in METRIC_LEARNERS else s["ways"]
    return s


def run(config, args):
    s = recipe_settings(config, args)
    out = pathlib.Path(args.out)
    keras.utils.set_random_seed(s["seed"])
    store, dataset = _load(s, args)
    labels = sorted(store, key=str)
    train_c, val_c, test_c = split_classes(labels, s["fractions"], seed=s["seed"])
    splits = {"meta-train": train_c, "validation": val_c, "test": test_c}
    if s["algorithm"] in METRIC_LEARNERS:  # no wider than the meta-train classes allow
        s["train_ways"] = max(s["ways"], min(s["train_ways"], len(train_c)))
    # Validation only picks the epoch: with fewer classes than --ways it uses them all
    # (a metric learner; a MAML-family head has exactly --ways outputs).
    s["val_ways"] = min(s["ways"], len(val_c)) if s["algorithm"] in METRIC_LEARNERS else s["ways"]
    _check_splits(s, store, splits)
    _check_same_run(out, s, dataset, len(labels))
    say(args, f"{dataset}: {len(labels)} classes -> {len(train_c)} meta-train, {len(val_c)} validation, "
               f"{len(test_c)} test (seed {s['seed']}); {sum(len(v) for v in store.values())} images of "
               f"{s['image_size'][0]}x{s['image_size'][1]}x{s['channels']}")
    train_x, train_y = _arrays(store, train_c)
    val_x, val_y = _arrays(store, val_c)
    test_x, test_y = _arrays(store, test_c)

    learner = _train(s, train_x, train_y, val_x, val_y, out, args)
    if learner is None:
        print(f"No model was kept in {out / 'models'}: nothing to test. Run the same command again "
              "to resume training.", flush=True)
        return {}
    name = f"acc_{s['ways']}w{s['shots']}s"
    scores = score_against_pixels(learner, test_x, test_y, s["ways"], s["shots"], s["eval_queries"],
                                  s["test_episodes"], s["eval_batch"], seed=s["seed"] + _TEST_SEED,
                                  steps=s.get("eval_steps"))
    metrics = {s["algorithm"]: {name: scores["learner"]}, "pixels": {name: scores["pixels"]}}
    gain = scores["gain"]
    config_out = {
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items()},
        "dataset": dataset, "classes": {k: len(v) for k, v in splits.items()},
        "paired_gain_over_pixels": list(gain),
        "train_minutes": round(CurveLogger.total_minutes(out / "clock.json"), 2),
    }
    write_results(out, "images", dataset, config_out, metrics)
    table = markdown_table(metrics, [name], fmt="{:.2f}")
    (out / "results.md").write_text(
        f"# {dataset}: {s['ways']}-way {s['shots']}-shot on {len(test_c)} test classes\n\n{table}\n\n"
        f"{s['algorithm']} minus pixels on the same {s['test_episodes']} episodes: {gain[0]:+.2f} ± {gain[1]:.2f}\n"
    )
    plot = plot_learning_curve(out / "curve.csv", out / "learning_curve.png", s)
    print("\n" + table + f"\n\n{s['algorithm']} minus pixels, paired: {gain[0]:+.2f} ± {gain[1]:.2f}", flush=True)
    say(args, f"Wrote {out / 'results.json'}, {out / 'results.md'}"
               + (f", {plot}" if plot else "") + f" and {out / 'models' / (s['algorithm'] + '.keras')}")
    return metrics


def _load(s, args):
    """The class store and a name for the dataset."""
    data_dir = None if args.tfds else args.data_dir or os.environ.get(DATA_DIR_ENV)
    if not (args.tfds or data_dir):
        raise ValueError(
            f"The images recipe needs --data-dir (a folder with one subfolder per class), "
            f"${DATA_DIR_ENV} or --tfds NAME. Received: neither"
        )
    store = read_classes(data_dir, args.tfds, args.split, args.tfds_dir, s["image_size"], s["channels"],
                         s["max_per_class"])
    return store, f"tfds:{args.tfds}[{args.split}]" if args.tfds else pathlib.Path(data_dir).name or str(data_dir)


def read_classes(data_dir, tfds, split, tfds_dir, image_size, channels, max_per_class):
    """The ``{class: images}`` store of a folder (`data_dir`) or, when `tfds` names one, a TFDS split."""
    if tfds is not None:
        return load_tfds_classes(tfds, split=split, image_size=image_size, channels=channels,
                                 max_per_class=max_per_class, data_dir=tfds_dir)
    return load_image_folder(data_dir, image_size=image_size, channels=channels, max_per_class=max_per_class)


def _check_splits(s, store, splits):
    """Every split can give the episodes it is asked for; else one message that says how to fix it."""
    need = {"meta-train": (s["train_ways"], s["shots"] + s["train_queries"]),
            "validation": (max(2, s["val_ways"]), s["shots"] + s["eval_queries"]),
            "test": (s["ways"], s["shots"] + s["eval_queries"])}
    for split, classes in splits.items():
        ways, per_class = need[split]
        if len(classes) < ways:
            fix = ("add classes, or give validation a larger share in recipe.toml's fractions"
                   if split == "validation" else "use a smaller --ways, or more classes")
            raise ValueError(
                f"The {split} classes number {len(classes)} ({len(store)} classes split "
                f"{'/'.join(str(f) for f in s['fractions'])}), fewer than the {ways} its episodes need: "
                f"{fix}. Received: --ways {s['ways']}"
            )
        short = [str(c) for c in classes if len(store[c]) < per_class]
        if short:
            raise ValueError(
                f"{len(short)} {split} class(es) have fewer than {per_class} images "
                f"(--shots {s['shots']} + {per_class - s['shots']} queries): "
                f"{first_few(short)}. Add images, or lower "
                f"--shots or the queries in recipe.toml. Received: --shots {s['shots']}"
            )


#: What makes a run's backup and model; a rerun in the same --out must not change them.
_RUN_KEYS = ("algorithm", "ways", "shots", "train_ways", "image_size", "channels", "max_per_class", "seed", "fractions")


def _check_same_run(out, s, dataset, num_classes):
    """Records the run's settings in OUT/run.json; refuses to resume one made with others."""
    record = {"dataset": dataset, "classes": num_classes,
              **{k: (list(s[k]) if isinstance(s[k], tuple) else s[k]) for k in _RUN_KEYS}}
    path = out / "run.json"
    if path.is_file():
        before = json.loads(path.read_text())
        changed = [f"{k}: {before.get(k)!r} -> {v!r}" for k, v in record.items() if before.get(k) != v]
        if changed:
            raise ValueError(
                f"{out} holds a run made with other settings ({'; '.join(changed)}); resuming it would "
                f"mix two models. Use another --out, or delete {out}. Received: --out {out}"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")


def _arrays(store, classes):
    x = np.concatenate([store[c] for c in classes])
    y = np.repeat(np.arange(len(classes)), [len(store[c]) for c in classes])
    return x, y


def _train(s, train_x, train_y, val_x, val_y, out, args):
    """Trains (or resumes); returns the best validation model, or None if a budget stopped it unsaved."""
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    best_path = models / f"{s['algorithm']}.keras"
    curve = out / "curve.csv"
    learner = build_learner(s, input_shape=train_x.shape[1:])
    sampler = EpisodeSampler(train_x, train_y, ways=s["train_ways"], shots=s["shots"], queries=s["train_queries"])
    stream = sampler.stream(s["meta_batch_size"], s["batches_per_epoch"], seed=s["seed"])
    val_sampler = EpisodeSampler(val_x, val_y, ways=s["val_ways"], shots=s["shots"], queries=s["eval_queries"])
    num_val = max(1, s["validation_episodes"] // s["eval_batch"])
    # The same validation episodes every epoch, batched as the test's.
    val_data = tf.data.Dataset.from_tensor_slices(stack_batches(
        [val_sampler.sample(s["eval_batch"], tf.constant([s["seed"] + _VALIDATION_SEED, b], tf.int64))
         for b in range(num_val)]
    ))
    best = best_epoch(curve, "val_accuracy") if best_path.is_file() else None
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(str(best_path), monitor="val_accuracy", mode="max", save_best_only=True,
                                        initial_value_threshold=None if best is None else best[1]),
        CurveLogger(curve, out / "clock.json"),
    ]
    if s["patience"]:
        patience = CurvePatience(curve, "val_accuracy", s["patience"])
        callbacks.append(patience)
        if patience.exhausted(CurveLogger.epochs_done(out / "clock.json")) and best_path.is_file():
            say(args, f"stopped earlier (patience {s['patience']}): testing its best model")
            return keras.models.load_model(best_path)
    if s["time_budget"] is not None:
        callbacks.append(TimeBudget(60.0 * s["time_budget"]))
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    say(args, f"\n== training {s['algorithm']}: {s['train_ways']}-way {s['shots']}-shot "
               f"{s['train_queries']}-query episodes, up to {s['epochs']} epochs of {s['batches_per_epoch']} "
               f"batches; validation: {num_val * s['eval_batch']} {s['val_ways']}-way episodes ==")
    learner.fit(stream, epochs=s["epochs"], validation_data=val_data, callbacks=callbacks, verbose=verbose)
    return keras.models.load_model(best_path) if best_path.is_file() else None


def evaluate_model(model, data_dir=None, tfds=None, split="test", tfds_dir=None, ways=5, shots=1,
                   queries=5, episodes=600, steps=None, max_per_class=None, invert=False, seed=0):
    """Tests a saved image learner on every class of a folder or a TFDS split.

    The images are read at the size and channels of the model's input. A
    MAML-family learner needs `ways` equal to its head's outputs; a metric
    learner takes any `ways`.

    Args:
        model: a ``.keras`` file holding a learner (or the learner itself).
        data_dir: a folder with one subfolder of images per class.
        tfds: a TFDS dataset name instead, with `split` and `tfds_dir`.
        ways, shots, queries, episodes: the test episodes.
        steps: a MAML-family learner's inner steps (default its own).
        max_per_class: read at most this many images of each class.
        invert: score ``1 - x`` (Omniglot models saw bright strokes on black).
        seed: the episodes' seed.

    Returns:
        A dict: ``model``, ``dataset``, ``classes``, ``ways``, ``shots``,
        ``episodes``, ``learner``, ``pixels`` and ``gain`` (``[mean, ci95]``
        in percent, as `score_against_pixels`) and ``table`` (markdown).

    Raises:
        ValueError: not an image learner, a dataset that does not give the
            episodes asked for, or bad arguments, each named.
    """
    from fewshot.algorithms.meta_learner import MetaLearner
    from fewshot.algorithms.metric_learner import MetricLearner

    learner = keras.models.load_model(model) if isinstance(model, (str, os.PathLike)) else model
    if not isinstance(learner, MetaLearner):
        raise ValueError(
            "Invalid value received for argument `model`: expected a fewshot learner (a .keras file "
            f"from recipes/images or recipes/omniglot). Received: {type(learner).__name__} from {model!r}"
        )
    shape = tuple(learner.backbone.input_shape[1:])
    if len(shape) != 3 or shape[-1] not in (1, 3) or None in shape:
        raise ValueError(
            f"Invalid value received for argument `model`: its input is not images (height, width, 1 or 3 "
            f"channels). Received: input shape {shape} from {model!r}"
        )
    ways = check_int("ways", ways, minimum=2)
    shots = check_int("shots", shots, minimum=1)
    queries = check_int("queries", queries, minimum=1)
    episodes = check_int("episodes", episodes, minimum=1)
    if not isinstance(learner, MetricLearner):
        outputs = learner.backbone.output_shape[-1]
        if outputs != ways:
            raise ValueError(
                f"Invalid value received for argument `ways`: this {type(learner).__name__} has a "
                f"{outputs}-way head, so it classifies {outputs} classes at a time. Received: ways={ways}"
            )
    if (data_dir is None) == (tfds is None):
        raise ValueError(
            "Give exactly one of `data_dir` (a folder, one subfolder per class) and `tfds` (a dataset "
            f"name). Received: data_dir={data_dir!r}, tfds={tfds!r}"
        )
    store = read_classes(data_dir, tfds, split, tfds_dir, shape[:2], shape[2], max_per_class)
    dataset = f"tfds:{tfds}[{split}]" if tfds is not None else str(data_dir)
    short = [str(c) for c, images in store.items() if len(images) < shots + queries]
    if short:
        raise ValueError(
            f"{len(short)} class(es) of {dataset} have fewer than shots + queries = {shots + queries} "
            f"images: {first_few(short)}. Lower `shots` or "
            f"`queries`, or add images. Received: shots={shots}, queries={queries}"
        )
    if len(store) < ways:
        raise ValueError(
            f"Invalid value received for argument `ways`: {dataset} has {len(store)} classes. "
            f"Received: ways={ways}"
        )
    x, y = _arrays(store, sorted(store, key=str))
    if invert:
        x = 1.0 - x
    scores = score_against_pixels(learner, x, y, ways, shots, queries, episodes, seed=seed, steps=steps)
    name = f"acc_{ways}w{shots}s"
    label = type(learner).__name__
    table = (
        markdown_table({label: {name: scores["learner"]}, "pixels": {name: scores["pixels"]}}, [name], fmt="{:.2f}")
        + f"\n\n{label} minus pixels on the same {episodes} episodes of {len(store)} classes "
        f"({dataset}): {scores['gain'][0]:+.2f} ± {scores['gain'][1]:.2f}"
    )
    return {
        "model": str(model), "dataset": dataset, "classes": len(store), "ways": ways, "shots": shots,
        "episodes": episodes, **{k: [float(v) for v in scores[k]] for k in scores}, "table": table,
    }


def score_against_pixels(learner, x, y, ways, shots, queries=5, episodes=600, batch=20, seed=0, steps=None):
    """A trained learner's N-way K-shot accuracy on classes, beside the raw pixels'.

    Draws `episodes` episodes of the classes in `y` and scores the learner
    (`fewshot.recipes.episodic.evaluate_accuracy`; a MAML-family learner
    adapts with `steps` inner steps, default its own) and the nearest class
    mean of the raw pixels (`pixel_prototype_accuracy`) on the same episodes.

    Returns:
        ``{"learner": (mean, ci95), "pixels": (mean, ci95), "gain": (mean,
        ci95)}`` in percent; ``gain`` is learner minus pixels, paired by
        episode.

    Example:

    >>> import keras, numpy as np
    >>> from fewshot.algorithms import PrototypicalNetwork
    >>> from fewshot.recipes.images import score_against_pixels
    >>> encoder = keras.Sequential([keras.Input((4,)), keras.layers.Identity()])
    >>> learner = PrototypicalNetwork(encoder)  # embeds the pixels as they are
    >>> x = np.repeat(np.eye(4, dtype="float32"), 5, axis=0)
    >>> y = np.repeat(np.arange(4), 5)
    >>> scores = score_against_pixels(learner, x, y, ways=3, shots=1, queries=2, episodes=20)
    >>> scores["learner"][0], scores["pixels"][0], scores["gain"][0]
    (100.0, 100.0, 0.0)
    """
    settings = {"eval_queries": queries, "eval_batch": batch}
    if steps is not None:
        settings["eval_steps"] = steps
    accs = evaluate_accuracy(learner, x, y, ways, shots, episodes, settings, seed=seed)
    pixels = pixel_prototype_accuracy(x, y, ways, shots, queries, episodes, batch, seed=seed)
    return {
        "learner": mean_ci95(100.0 * accs),
        "pixels": mean_ci95(100.0 * pixels),
        "gain": mean_ci95(100.0 * (accs - pixels)),
    }


def pixel_prototype_accuracy(x, y, ways, shots, queries, episodes, batch, seed):
    """Per-episode accuracy of the nearest class mean of the raw pixels.

    Uses the same episodes as `fewshot.recipes.episodic.evaluate_accuracy`
    with the same seed (episodes depend on the labels and the seed only), so
    the two are paired.

    Example:

    >>> import numpy as np
    >>> from fewshot.recipes.images import pixel_prototype_accuracy
    >>> x = np.repeat(np.eye(4, dtype="float32"), 5, axis=0)  # 4 classes, each one pattern
    >>> y = np.repeat(np.arange(4), 5)
    >>> pixel_prototype_accuracy(x, y, ways=3, shots=1, queries=2, episodes=4, batch=2, seed=0).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    flat = np.asarray(x, np.float32).reshape(len(x), -1)
    sampler = EpisodeSampler(flat, y, ways=ways, shots=shots, queries=queries)
    accs = []
    for b in range(-(-episodes // batch)):
        e = sampler.sample(batch, tf.constant([seed, b], tf.int64))
        support = tf.reshape(e["support_x"], [batch, ways, shots, -1])  # support is class-major
        prototypes = tf.reduce_mean(support, axis=2)
        distances = tf.reduce_sum(tf.square(e["query_x"][:, :, None, :] - prototypes[:, None, :, :]), -1)
        correct = tf.equal(tf.argmin(distances, -1, output_type=tf.int32), tf.cast(e["query_y"], tf.int32))
        accs.append(tf.reduce_mean(tf.cast(correct, tf.float32), axis=1).numpy())
    return np.concatenate(accs)[:episodes]


def plot_learning_curve(curve, path, s):
    """Training and validation accuracy by epoch, from curve.csv; None without one."""
    import csv

    if not pathlib.Path(curve).is_file():
        return None
    with open(curve) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for key, label in (("accuracy", f"training ({s['train_ways']}-way)"), ("val_accuracy", f"validation ({s['val_ways']}-way)")):
        values = [100.0 * float(r[key]) for r in rows if r.get(key)]
        if values:
            ax.plot(epochs[: len(values)], values, marker=".", label=label)
    ax.axhline(100.0 / s["val_ways"], color="grey", lw=0.8, ls=":", label=f"chance ({s['val_ways']}-way)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("query accuracy %")
    ax.set_ylim(0, 100)
    ax.set_title(f"{s['algorithm']}, {s['shots']}-shot")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
