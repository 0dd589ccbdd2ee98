"""Meta-steps per second with glibc's default malloc and with `fewshot.allocator`'s settings.

Each workload runs in a fresh process started twice per round, once with
glibc's defaults (no `GLIBC_TUNABLES`) and once with `GLIBC_TUNABLES` from
`fewshot.allocator.tuned_environ()`,
alternating over several rounds; the table gives the median meta-steps/s, the
ratio, and the kernel (system) CPU seconds and minor page faults per step,
measured with `getrusage` around the timed steps. Workloads:

- `drug MLP`: the drug-property recipe's second-order MAML step, the
  2048-512-128-2 MLP on 8 tasks of 20 support and 32 query fingerprints,
  3 inner steps, vectorised over tasks.
- `Conv4`: the Omniglot recipe's second-order MAML step, 5-way 1-shot
  5-query, meta-batch 32, one inner step, two tasks at a time.

    python benchmarks/malloc_tuning.py [--rounds 3] [--steps 20] [--workloads mlp conv4]
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

WORKLOADS = {"mlp": "drug MLP, 2nd order, 3 steps", "conv4": "Conv4 5w1s, 2nd order, 1 step"}


def measure(workload, steps):
    """Runs `steps` meta-steps of `workload` in this process; returns its numbers."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    import fewshot

    keras.utils.set_random_seed(0)
    if workload == "mlp":
        backbone = fewshot.models.mlp(input_shape=(2048,), hidden=(512, 128), outputs=2)
        learner = fewshot.MAML(backbone, inner_lr=0.05, inner_steps=3)
        shape, ways, support, query, tasks = (2048,), 2, 20, 32, 8
    else:
        backbone = fewshot.models.conv4(input_shape=(28, 28, 1), outputs=5)
        learner = fewshot.MAML(backbone, inner_lr=0.4, inner_steps=1, vectorize=False, tasks_per_chunk=2)
        shape, ways, support, query, tasks = (28, 28, 1), 5, 5, 25, 32
    learner.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    batch = {
        "support_x": rng.random((tasks, support) + shape, dtype=np.float32),
        "support_y": rng.integers(0, ways, (tasks, support)),
        "query_x": rng.random((tasks, query) + shape, dtype=np.float32),
        "query_y": rng.integers(0, ways, (tasks, query)),
    }
    batch = {key: tf.constant(value) for key, value in batch.items()}
    learner.train_on_batch(batch)  # trace
    learner.train_on_batch(batch)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for _ in range(steps):
        learner.train_on_batch(batch)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rate": steps / seconds,
        "system_s_per_step": (after.ru_stime - before.ru_stime) / steps,
        "faults_per_step": (after.ru_minflt - before.ru_minflt) / steps,
    }


def run_child(workload, steps, tuned):
    from fewshot.allocator import tuned_environ

    base = {key: value for key, value in os.environ.items() if key != "GLIBC_TUNABLES"}
    environ = tuned_environ(base) if tuned else base
    if environ is None:
        raise SystemExit("fewshot.allocator has nothing to set on this system (no glibc?)")
    result = subprocess.run(
        [sys.executable, __file__, "--child", workload, "--steps", str(steps)],
        env=environ, capture_output=True, text=True, check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both settings (default 3)")
    parser.add_argument("--steps", type=int, default=20, help="timed meta-steps per process (default 20)")
    parser.add_argument("--workloads", nargs="+", choices=sorted(WORKLOADS), default=["mlp", "conv4"],
                        help="workloads to time (default mlp conv4)")
    parser.add_argument("--child", choices=sorted(WORKLOADS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.steps)))
        return
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.libc_ver()}")
    print("| workload | malloc | meta-steps/s (median) | ratio | system s / step | page faults / step |")
    print("|---|---|---|---|---|---|")
    for workload in args.workloads:
        runs = {False: [], True: []}
        for _ in range(args.rounds):
            for tuned in (False, True):
                runs[tuned].append(run_child(workload, args.steps, tuned))
        base = statistics.median(r["rate"] for r in runs[False])
        for tuned in (False, True):
            rates = [r["rate"] for r in runs[tuned]]
            median = statistics.median(rates)
            print(
                f"| {WORKLOADS[workload]} | {'fewshot.allocator' if tuned else 'glibc default'} "
                f"| {median:.2f} ({min(rates):.2f}-{max(rates):.2f}) | {median / base:.2f}x "
                f"| {statistics.median(r['system_s_per_step'] for r in runs[tuned]):.3f} "
                f"| {statistics.median(r['faults_per_step'] for r in runs[tuned]):,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
