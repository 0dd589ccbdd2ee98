"""Peak memory of a MAML meta-step against the number of inner steps.

Workload: Omniglot-shaped Conv4 (28x28x1, 64 filters, 4 blocks), 5-way
1-shot with 5 queries per class, random inputs, meta-batch 32 by default.
Configurations: second order, second order with ``recompute_inner=True``
(gradient checkpointing through the inner loop), first order, and each
order with ``tasks_per_chunk=1`` (the meta-gradient accumulated task by task
in a `tf.while_loop`, tasks unrolled with ``vectorize=False``); inner
steps 1, 5 and 10. Each configuration runs in a fresh process, so its peak
resident memory (VmHWM from /proc/self/status) is its own; the table also
shows the rise over the process's resident memory just before the first
meta-step (TensorFlow, the model and the data), and meta-steps/s.

    python benchmarks/maml_memory.py [--tasks 32] [--steps 1 5 10] [--meta-steps 3] [--configs NAME ...]

CPU only (peak RSS); on a GPU the same question is answered by
`tf.config.experimental.get_memory_info("GPU:0")["peak"]`, which
`--device gpu` reports instead.
"""

import argparse
import json
import os
import subprocess
import sys
import time

# name: fewshot.MAML keyword arguments
CONFIGS = {
    "second order": {},
    "second order + recompute_inner": {"recompute_inner": True},
    "first order": {"first_order": True},
    "second order, task loop": {"vectorize": False},
    "second order, tasks_per_chunk=1": {"vectorize": False, "tasks_per_chunk": 1},
    "first order, tasks_per_chunk=1": {"first_order": True, "vectorize": False, "tasks_per_chunk": 1},
}


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure(args):
    """Runs one configuration in this process; prints one JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    import fewshot

    if args.device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    keras.utils.set_random_seed(0)
    learner = fewshot.MAML(
        fewshot.models.conv4(input_shape=(28, 28, 1), outputs=5),
        inner_lr=0.4,
        inner_steps=args.one_steps,
        **CONFIGS[args.one_config],
    )
    learner.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    ways, shots, queries = 5, 1, 5
    batch = {
        "support_x": rng.random((args.tasks, ways * shots, 28, 28, 1), dtype="float32"),
        "support_y": np.tile(np.repeat(np.arange(ways), shots), (args.tasks, 1)).astype("int32"),
        "query_x": rng.random((args.tasks, ways * queries, 28, 28, 1), dtype="float32"),
        "query_y": np.tile(np.repeat(np.arange(ways), queries), (args.tasks, 1)).astype("int32"),
    }
    before = _status_kib("VmRSS")
    learner.train_on_batch(batch)  # trace and first step
    start = time.perf_counter()
    for _ in range(args.meta_steps):
        learner.train_on_batch(batch)
    rate = args.meta_steps / (time.perf_counter() - start)
    result = {"rate": rate, "before_mib": before / 1024}
    if args.device == "gpu":
        info = tf.config.experimental.get_memory_info("GPU:0")
        result["peak_mib"] = info["peak"] / 2**20
        result["before_mib"] = 0.0
    else:
        result["peak_mib"] = _status_kib("VmHWM") / 1024
    print("RESULT " + json.dumps(result), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=32, help="meta-batch size")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5, 10], help="inner steps")
    parser.add_argument("--meta-steps", type=int, default=3, help="timed meta-steps per configuration")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="where MAML runs (default cpu)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per configuration")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                        metavar="NAME", help=f"configurations to run (default all: {list(CONFIGS)})")
    parser.add_argument("--one-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one-config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_steps is not None:
        return measure(args)
    rows = []
    for steps in args.steps:
        for name in args.configs:
            command = [sys.executable, __file__, "--tasks", str(args.tasks), "--device", args.device,
                       "--meta-steps", str(args.meta_steps), "--one-steps", str(steps),
                       "--one-config", name]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
                line = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
                result = json.loads(line[-1][7:]) if line else {"error": done.stderr[-300:]}
            except subprocess.TimeoutExpired:
                result = {"error": f"over {args.timeout:.0f} s"}
            rows.append((name, steps, result))
            print(f"  {name}, {steps} steps: {result}", file=sys.stderr, flush=True)
    print(f"\nMAML peak memory, Conv4 5-way 1-shot 5 queries, meta-batch {args.tasks}, "
          f"device {args.device}, {os.cpu_count()} CPUs\n")
    unit = "peak GPU MiB" if args.device == "gpu" else "peak RSS MiB"
    print(f"| configuration | inner steps | {unit} | rise over start MiB | meta-steps/s |")
    print("|---|---|---|---|---|")
    for name, steps, r in rows:
        if "error" in r:
            print(f"| {name} | {steps} | failed: {r['error'].strip().splitlines()[-1] if r['error'].strip() else '?'} | | |")
            continue
        print(f"| {name} | {steps} | {r['peak_mib']:.0f} | {r['peak_mib'] - r['before_mib']:.0f} "
              f"| {r['rate']:.2f} |")


if __name__ == "__main__":
    main()
