"""ANIL's meta-update with the body's features computed once per task.

ANIL adapts only the head, so the body's output on a task's support set is
the same at every inner step. `fewshot.ANIL` (any `fewshot.MAML` with
``adapt_layers`` on a `keras.Sequential` backbone whose first layers stay
fixed) computes it once and steps through the head alone; before session 25
every inner step ran the whole backbone. This script times both, and
second-order MAML (every layer adapted) for scale, in one process with the
rounds interleaved, so the ratios compare like with like on a shared machine.

Workload: Omniglot-shaped Conv4 (28x28x1, 64 filters, 4 blocks), 5-way
K-shot with 5 queries per class, random inputs, second order, the Omniglot
recipe's task loop (``vectorize=False, tasks_per_chunk=2``). "ANIL, whole
backbone each step" is the old path, rebuilt by tracing with the split
switched off (`fewshot.algorithms.maml.split_at_adapted` returning None).

    python benchmarks/anil_speed.py [--shots 1 5] [--steps 1 5] [--tasks 8] [--rounds 3] [--meta-steps 2]

Expected: no gain at one inner step (the body runs once on the support set
either way), a gain that grows with the steps and the support set's size.
"""

import argparse
import contextlib
import os
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5],
                        help="K of the 5-way tasks (default 1 5)")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5],
                        help="inner steps (default 1 5)")
    parser.add_argument("--tasks", type=int, default=8, help="meta-batch size (default 8)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved timing rounds per configuration (default 3)")
    parser.add_argument("--meta-steps", type=int, default=2,
                        help="meta-updates timed per round (default 2)")
    args = parser.parse_args(argv)
    given = {"--shots": args.shots, "--steps": args.steps, "--tasks": [args.tasks],
             "--rounds": [args.rounds], "--meta-steps": [args.meta_steps]}
    for flag, values in given.items():
        if min(values) < 1:
            parser.error(f"argument {flag}: expected positive integers. Received: {values}")
    return args


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    import fewshot
    from fewshot.algorithms import maml

    @contextlib.contextmanager
    def whole_backbone():
        split = maml.split_at_adapted
        maml.split_at_adapted = lambda model, mask: None
        try:
            yield
        finally:
            maml.split_at_adapted = split

    configs = {
        "ANIL, body once": (fewshot.ANIL, contextlib.nullcontext),
        "ANIL, whole backbone each step": (fewshot.ANIL, whole_backbone),
        "MAML (every layer adapted)": (fewshot.MAML, contextlib.nullcontext),
    }
    ways, queries = 5, 5
    rng = np.random.default_rng(0)
    rows = []
    for shots in args.shots:
        batch = {
            "support_x": rng.random((args.tasks, ways * shots, 28, 28, 1), dtype="float32"),
            "support_y": np.tile(np.repeat(np.arange(ways), shots), (args.tasks, 1)).astype("int32"),
            "query_x": rng.random((args.tasks, ways * queries, 28, 28, 1), dtype="float32"),
            "query_y": np.tile(np.repeat(np.arange(ways), queries), (args.tasks, 1)).astype("int32"),
        }
        for steps in args.steps:
            learners = {}
            for name, (cls, context) in configs.items():
                keras.utils.set_random_seed(0)
                learner = cls(fewshot.models.conv4(input_shape=(28, 28, 1), outputs=ways),
                              inner_lr=0.4, inner_steps=steps, vectorize=False, tasks_per_chunk=2)
                learner.compile(optimizer=keras.optimizers.Adam(1e-3),
                                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
                with context():
                    learner.train_on_batch(batch)  # traces with the split on or off
                learner.train_on_batch(batch)  # a warm-up update, untimed
                learners[name] = learner
            seconds = {name: [] for name in configs}
            for _ in range(args.rounds):
                for name, learner in learners.items():
                    start = time.perf_counter()
                    for _ in range(args.meta_steps):
                        learner.train_on_batch(batch)
                    seconds[name].append((time.perf_counter() - start) / args.meta_steps)
            old = float(np.median(seconds["ANIL, whole backbone each step"]))
            for name in configs:
                step = float(np.median(seconds[name]))
                rows.append((f"5w{shots}s", steps, name, step, old / step))
            print(f"done: 5-way {shots}-shot, {steps} inner steps", flush=True)

    print(f"\nConv4 28x28, meta-batch {args.tasks}, second order, task loop in chunks of 2; "
          f"median of {args.rounds} interleaved rounds of {args.meta_steps} meta-updates\n")
    print("| cell | inner steps | configuration | s / meta-update | speed-up over the old ANIL path |")
    print("|---|---|---|---|---|")
    for cell, steps, name, step, ratio in rows:
        print(f"| {cell} | {steps} | {name} | {step:.3f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
