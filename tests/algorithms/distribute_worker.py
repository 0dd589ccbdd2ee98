"""One MAML meta-update under a tf.distribute strategy; writes the new weights.

Run as a script by tests/algorithms/test_distribute.py, each run in its own
process (logical devices and TF_CONFIG must be set before TensorFlow starts):

    python distribute_worker.py {single|mirrored|multiworker} OUT_PREFIX

`single` runs on one device; `mirrored` splits the meta-batch over two
logical CPU devices; `multiworker` is one of the workers named in TF_CONFIG.
Each run does five problems and writes
OUT_PREFIX-{mse,sce,reptile,chunked,chunked3}.npz: `mse` (regression, a loss
function), `sce` (classification, a `keras.losses.Loss` object, which Keras
scales by the replica count), `reptile` (regression with Reptile, whose own
train_step builds the update), `chunked` (`mse` with ``tasks_per_chunk=1``)
and `chunked3` (`mse` with ``tasks_per_chunk=3``: one chunk and one task
left over on one device, no whole chunk and two tasks left over on each of
two replicas).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

TASKS = 4


def episodes(loss):
    rng = np.random.default_rng(0)
    if loss in ("mse", "reptile", "chunked", "chunked3"):
        sx = rng.uniform(-5, 5, size=(TASKS, 10, 1)).astype("float32")
        qx = rng.uniform(-5, 5, size=(TASKS, 10, 1)).astype("float32")
        amp = rng.uniform(0.5, 3, size=(TASKS, 1, 1)).astype("float32")
        return {"support_x": sx, "support_y": amp * np.sin(sx),
                "query_x": qx, "query_y": amp * np.sin(qx)}
    sx = rng.normal(size=(TASKS, 6, 4)).astype("float32")
    qx = rng.normal(size=(TASKS, 6, 4)).astype("float32")
    labels = np.tile(np.arange(3, dtype="int32"), (TASKS, 2))
    return {"support_x": sx, "support_y": labels, "query_x": qx, "query_y": labels.copy()}


def build(loss):
    import keras

    import fewshot

    keras.utils.set_random_seed(0)
    if loss in ("mse", "reptile", "chunked", "chunked3"):
        backbone = fewshot.models.mlp(hidden=(16, 16))
        task_loss = "mse"
    else:
        backbone = fewshot.models.mlp(input_shape=(4,), hidden=(16,), outputs=3)
        task_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    base = fewshot.Reptile if loss == "reptile" else fewshot.MAML

    class Reporting(base):
        """Prints how many tasks each replica adapts in a meta-update."""

        def train_step(self, data):
            tasks = tf.shape(self._unpack(data)["support_x"])[0]
            tf.print("TASKS_PER_REPLICA", tasks, output_stream=sys.stdout)
            return super().train_step(data)

    # `chunked`: the `mse` problem with the meta-gradient accumulated task by task;
    # `chunked3`: in chunks of 3 tasks, which a replica's 4 or 2 tasks do not fill.
    chunks = {"chunked": {"tasks_per_chunk": 1}, "chunked3": {"tasks_per_chunk": 3}}.get(loss, {})
    learner = Reporting(backbone, inner_lr=0.1, inner_steps=2, **chunks)
    learner.compile(optimizer=keras.optimizers.SGD(0.05), loss=task_loss)
    return learner


def main(mode, prefix):
    if mode == "single":
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    elif mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    elif mode == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    for loss in ("mse", "sce", "reptile", "chunked", "chunked3"):
        with strategy.scope():
            learner = build(loss)
        # One global meta-batch of TASKS tasks; the strategy splits it by replica.
        dataset = tf.data.Dataset.from_tensor_slices(episodes(loss)).batch(TASKS)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        history = learner.fit(dataset.with_options(options), epochs=1, verbose=0)
        weights = {f"w{i}": v.numpy() for i, v in enumerate(learner.trainable_variables)}
        np.savez(f"{prefix}-{loss}.npz", loss=np.float64(history.history["loss"][0]),
                 replicas=strategy.num_replicas_in_sync, **weights)


if __name__ == "__main__":
    main(*sys.argv[1:3])
