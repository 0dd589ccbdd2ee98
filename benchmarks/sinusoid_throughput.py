"""Meta-steps per second of MAML on the sinusoid task, compiled against eager.

Workload (issue #2): meta-batch 25, K=10 support and 10 query points, one
inner step, the 1-40-40-1 ReLU MLP, Adam. Every configuration is measured in
this one run, interleaved over several rounds, and the table reports the
median rate and its ratio to eager execution, because the machines here are
shared and only ratios within a run are comparable.

    python benchmarks/sinusoid_throughput.py [--steps 300] [--eager-steps 15] [--rounds 3]
"""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import fewshot  # noqa: E402

CONFIGS = [
    # name, first_order, run_eagerly, jit_compile, vectorize
    ("second order, eager", False, True, False, True),
    ("second order, eager, task loop", False, True, False, False),
    ("second order, tf.function", False, False, False, True),
    ("second order, tf.function, task loop", False, False, False, False),
    ("second order, tf.function + XLA", False, False, True, True),
    ("first order, eager", True, True, False, True),
    ("first order, eager, task loop", True, True, False, False),
    ("first order, tf.function", True, False, False, True),
    ("first order, tf.function + XLA", True, False, True, True),
]


def build(first_order, run_eagerly, jit_compile, vectorize):
    keras.utils.set_random_seed(0)
    learner = fewshot.MAML(
        fewshot.models.mlp(hidden=(40, 40)),
        inner_lr=0.01,
        inner_steps=1,
        first_order=first_order,
        vectorize=vectorize,
    )
    learner.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="mse",
        run_eagerly=run_eagerly,
        jit_compile=jit_compile,
    )
    return learner


def rate(learner, batches, steps):
    """Meta-steps per second over `steps` calls of train_on_batch."""
    start = time.perf_counter()
    for i in range(steps):
        learner.train_on_batch(batches[i % len(batches)])
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="timed meta-steps per compiled round")
    parser.add_argument("--eager-steps", type=int, default=15, help="timed meta-steps per eager round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="where the meta-steps run (default cpu)")
    args = parser.parse_args()
    if args.device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    family = fewshot.episodes.Sinusoid(support_shots=10, query_shots=10)
    batches = [family.sample(25, seed=i) for i in range(20)]
    learners = {}
    for name, first_order, eager, xla, vectorize in CONFIGS:
        learners[name] = build(first_order, eager, xla, vectorize)
        learners[name].train_on_batch(batches[0])  # trace / compile outside the timing
    rates = {name: [] for name in learners}
    for _ in range(args.rounds):
        for name, learner in learners.items():
            steps = args.eager_steps if learner.run_eagerly else args.steps
            rates[name].append(rate(learner, batches, steps))
    print(f"MAML sinusoid throughput: meta-batch 25, K=10, 1 inner step; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"TF {tf.__version__}, Keras {keras.__version__}; median of {args.rounds} rounds\n")
    print("| configuration | meta-steps/s | vs best eager (same order) |")
    print("|---|---|---|")
    for name in learners:
        median = statistics.median(rates[name])
        # Ratio to the faster of the two eager variants of the same order.
        order = "first" if name.startswith("first") else "second"
        eager = max(statistics.median(rates[f"{order} order, eager{v}"]) for v in ("", ", task loop"))
        ratio = median / eager
        print(f"| {name} | {median:.1f} | {ratio:.0f}x |")


if __name__ == "__main__":
    main()
