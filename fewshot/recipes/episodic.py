"""Training and testing a classifier on episodes: what the image recipes share.

`fewshot.recipes.omniglot` and `fewshot.recipes.images` build their learner
on a Conv4 encoder, log and stop training by their validation curve, and
test it on N-way K-shot episodes with the functions here.
"""

import csv
import json
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from fewshot.algorithms import (
    ANIL,
    MAML,
    MetaSGD,
    PrototypicalNetwork,
    Reptile,
    SiameseNetwork,
    TaskRetrieval,
)
from fewshot.algorithms.metric_learner import MetricLearner
from fewshot.episodes.sampler import EpisodeSampler
from fewshot.models.conv4 import TORCH_CONV_INITIALIZER, conv4

#: What picks a run's best validation epoch, and which way is better.
MONITORS = {"val_accuracy": "max", "val_loss": "min"}
#: The algorithms that classify by distances between embeddings.
METRIC_LEARNERS = ("protonet", "siamese")


def build_learner(s, input_shape):
    """The compiled learner of `s["algorithm"]` on a Conv4 backbone."""
    algorithm = s["algorithm"]
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    torch = s.get("init", "keras") == "pytorch"
    layer_defaults = {
        "kernel_initializer": TORCH_CONV_INITIALIZER, "batch_norm_epsilon": 1e-5, "batch_norm_momentum": 0.9
    } if torch else {}
    adam_epsilon = 1e-8 if torch else 1e-7
    if algorithm in METRIC_LEARNERS:
        encoder = conv4(input_shape=tuple(input_shape), **layer_defaults)
        if algorithm == "protonet":
            learner = PrototypicalNetwork(encoder, distance=s.get("distance", "euclidean"))
        else:
            learner = SiameseNetwork(encoder, margin=s.get("margin", 1.0))
        learner.compile(
            optimizer=keras.optimizers.Adam(_learning_rate(s), epsilon=adam_epsilon), loss=ce, metrics=["accuracy"]
        )
        return learner
    backbone = conv4(input_shape=tuple(input_shape), outputs=s["ways"], **layer_defaults)
    common = {
        "inner_lr": s["inner_lr"], "inner_steps": s["inner_steps"],
        # Conv4 on CPU: tasks one at a time beat tf.vectorized_map (benchmarks/README.md).
        "vectorize": s.get("vectorize", True), "tasks_per_chunk": s.get("tasks_per_chunk"),
    }
    if algorithm in ("maml", "fomaml"):
        learner = MAML(backbone, first_order=algorithm == "fomaml", **common)
    elif algorithm == "metasgd":
        learner = MetaSGD(backbone, first_order=s.get("first_order", False), **common)
    elif algorithm == "anil":
        learner = ANIL(backbone, first_order=s.get("first_order", False), **common)
    elif algorithm == "reptile":
        common.pop("tasks_per_chunk")  # its update is not a meta-gradient
        learner = Reptile(backbone, inner_batch_size=s.get("inner_batch_size"), **common)
    else:
        learner = TaskRetrieval(backbone, memory_size=s.get("memory_size", 64), first_order=True, **common)
    if algorithm == "reptile":
        optimizer = keras.optimizers.SGD(s["outer_lr"])
    else:
        optimizer = keras.optimizers.Adam(_learning_rate(s), epsilon=adam_epsilon)
    learner.compile(optimizer=optimizer, loss=ce, metrics=["accuracy"])
    return learner


def _learning_rate(s):
    """`outer_lr`, halved every `lr_halve_every` optimizer steps when that is set (Snell et al.)."""
    if not s.get("lr_halve_every"):
        return s["outer_lr"]
    return keras.optimizers.schedules.ExponentialDecay(
        s["outer_lr"], decay_steps=int(s["lr_halve_every"]), decay_rate=0.5, staircase=True
    )


def evaluate_accuracy(learner, x, y, ways, shots, episodes, s, seed):
    """Per-episode query accuracy (fractions) over `episodes` test episodes.

    Metric learners (`fewshot.algorithms.metric_learner.MetricLearner`) in
    inference mode embed the test images once and draw the episodes over the
    embeddings; the others adapt on every episode (with ``s["eval_steps"]``
    inner steps, else their own ``inner_steps``). The episodes depend on `y`
    and `seed` only, so two learners scored with the same ones are paired.
    """
    queries = s["eval_queries"]
    batch = s["eval_batch"]
    if isinstance(learner, MetricLearner):
        z = learner.embed(x)
        sampler = EpisodeSampler(z, y, ways=ways, shots=shots, queries=queries)
        fn = tf.function(lambda e: learner.logits_from_embeddings(e["support_x"], e["support_y"], e["query_x"]))
    else:
        sampler = EpisodeSampler(x, y, ways=ways, shots=shots, queries=queries)
        steps = s.get("eval_steps", learner.inner_steps)
        fn = tf.function(lambda e: learner.query_predictions(e, training=False, steps=steps))
    accs = []
    for b in range(-(-episodes // batch)):
        seed_pair = tf.constant([seed, b], tf.int64)
        e = sampler.sample(batch, seed_pair)
        logits = fn(e)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), tf.cast(e["query_y"], tf.int32)), tf.float32)
        accs.append(tf.reduce_mean(correct, axis=1).numpy())
    return np.concatenate(accs)[:episodes]


def stack_batches(batches):
    """Episode batches (dicts) stacked on a new leading axis, one per batch."""
    return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def best_epoch(curve, monitor="val_accuracy"):
    """``(epoch, value)`` of the best `monitor` value in a cell's curve.csv; None without one.

    The first epoch wins a tie, as `keras.callbacks.ModelCheckpoint` keeps it.

    Example:

    >>> import pathlib, tempfile
    >>> curve = pathlib.Path(tempfile.mkdtemp()) / "curve.csv"
    >>> _ = curve.write_text("epoch,minutes,val_accuracy,val_loss\\n"
    ...                      "1,1.0,0.6,0.9\\n2,2.0,0.7,0.8\\n3,3.0,0.7,0.75\\n")
    >>> best_epoch(curve), best_epoch(curve, "val_loss")
    ((2, 0.7), (3, 0.75))
    """
    rows = []
    if pathlib.Path(curve).is_file():
        with pathlib.Path(curve).open() as f:
            rows = [(int(r["epoch"]), float(r[monitor])) for r in csv.DictReader(f) if r.get(monitor)]
    if not rows:
        return None
    sign = 1.0 if MONITORS[monitor] == "max" else -1.0
    return max(rows, key=lambda row: (sign * row[1], -row[0]))


class CurveLogger(keras.callbacks.Callback):
    """Appends one row per epoch to a CSV: epoch, cumulative minutes, logs.

    The cumulative training time survives resumption (kept in a small JSON
    file beside the CSV).
    """

    def __init__(self, path, clock_path):
        super().__init__()
        self.path = pathlib.Path(path)
        self.clock_path = pathlib.Path(clock_path)

    @staticmethod
    def total_minutes(clock_path):
        clock_path = pathlib.Path(clock_path)
        return json.loads(clock_path.read_text())["minutes"] if clock_path.is_file() else 0.0

    @staticmethod
    def epochs_done(clock_path):
        """Epochs trained in all invocations so far (0 before the first ends)."""
        clock_path = pathlib.Path(clock_path)
        return json.loads(clock_path.read_text())["epoch"] if clock_path.is_file() else 0

    def on_train_begin(self, logs=None):
        self._base = self.total_minutes(self.clock_path)
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        minutes = self._base + (time.perf_counter() - self._start) / 60.0
        self.clock_path.write_text(json.dumps({"minutes": minutes, "epoch": epoch + 1}))
        row = {"epoch": epoch + 1, "minutes": round(minutes, 2)}
        row.update({k: round(float(v), 5) for k, v in (logs or {}).items()})
        new = not self.path.is_file()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row), lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow(row)


class CurvePatience(keras.callbacks.Callback):
    """Stops training once `patience` epochs have passed without a better `monitor` value.

    Reads the cell's curve.csv (so place it after `CurveLogger`), which holds
    every epoch of every invocation: unlike `keras.callbacks.EarlyStopping`,
    the count survives resuming from the backup.
    """

    def __init__(self, path, monitor, patience):
        super().__init__()
        self.path, self.monitor, self.patience = pathlib.Path(path), monitor, patience

    def _stale_best(self, epochs_done):
        """The curve's best epoch when it is `patience` or more epochs before `epochs_done`, else None."""
        best = best_epoch(self.path, self.monitor)
        return best[0] if best is not None and epochs_done - best[0] >= self.patience else None

    def exhausted(self, epochs_done):
        """Whether the curve's best epoch is `patience` or more epochs before `epochs_done`."""
        return self._stale_best(epochs_done) is not None

    def on_epoch_end(self, epoch, logs=None):
        best = self._stale_best(epoch + 1)
        if best is not None:
            print(f"\nNo better {self.monitor} than epoch {best}'s in {self.patience} epochs: "
                  "stopping (patience)", flush=True)
            self.model.stop_training = True
