"""When does task retrieval beat the meta-initialisation? Sinusoid tasks that recur.

    python benchmarks/task_retrieval.py [--meta-steps 2000] [--known 20] [--new 200]

Meta-trains `fewshot.TaskRetrieval` (MAML inside) on the sinusoid family,
remembers `--known` tasks (each solved once from 100 points with 200 inner
steps), then adapts to new tasks with K support points and S steps, starting
from the retrieved weights or from the meta-initialisation (plain MAML), and
prints the query MSE (mean ± 95% interval over the new tasks) for:

- recurring tasks: a known task with its amplitude scaled by U[0.95, 1.05]
  and its phase shifted by U[-0.05, 0.05];
- fresh tasks: new draws from the whole family, unlike any remembered one.
"""

import argparse
import time

import keras
import numpy as np

import fewshot
from fewshot.metrics import mean_ci95


def _points(amplitude, phase, n, rng):
    x = rng.uniform(-5, 5, (n, 1)).astype("float32")
    return x, (amplitude * np.sin(x - phase)).astype("float32")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-steps", type=int, default=2000, help="meta-training steps of the MAML inside (default 2000)")
    parser.add_argument("--known", type=int, default=20, help="tasks solved once and remembered (default 20)")
    parser.add_argument("--new", type=int, default=200, help="new tasks scored, recurring and fresh each (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the tasks (default 0)")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    backbone = fewshot.models.mlp(input_shape=(1,), hidden=(40, 40), outputs=1)
    learner = fewshot.TaskRetrieval(backbone, memory_size=args.known, inner_lr=0.01, inner_steps=1)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    family = fewshot.episodes.Sinusoid()
    learner.fit(family.stream(meta_batch_size=25, batches_per_epoch=args.meta_steps, seed=args.seed), epochs=1, verbose=0)
    train_minutes = (time.perf_counter() - start) / 60

    rng = np.random.default_rng(args.seed + 1)
    known = [(rng.uniform(0.1, 5.0), rng.uniform(0.0, np.pi)) for _ in range(args.known)]
    for a, p in known:
        learner.remember(*_points(a, p, 100, rng), steps=200, inner_lr=0.02)

    rows = []
    for scenario in ("recurring", "fresh"):
        for shots in (5, 10):
            results = {}
            hits = 0
            for t in range(args.new):
                if scenario == "recurring":
                    index = rng.integers(args.known)
                    a, p = known[index]
                    a, p = a * rng.uniform(0.95, 1.05), p + rng.uniform(-0.05, 0.05)
                else:
                    index, a, p = -1, rng.uniform(0.1, 5.0), rng.uniform(0.0, np.pi)
                sx, sy = _points(a, p, shots, rng)
                qx, qy = _points(a, p, 100, rng)
                for steps in (0, 1, 10):
                    for similarity in ("support_loss", "embedding"):
                        learner.similarity = similarity
                        adapted = learner.adapt(sx, sy, steps=steps)
                        mse = float(np.mean((adapted(qx).numpy() - qy) ** 2))
                        results.setdefault((similarity, steps), []).append(mse)
                        if steps == 0 and similarity == "support_loss":
                            hits += adapted.retrieved_index == index
                    plain = fewshot.MAML.adapt(learner, sx, sy, steps=steps)
                    results.setdefault(("meta-init", steps), []).append(
                        float(np.mean((plain(qx).numpy() - qy) ** 2))
                    )
            for (start_from, steps), values in sorted(results.items()):
                mean, half = mean_ci95(values)
                rows.append((scenario, shots, start_from, steps, mean, half))
            if scenario == "recurring":
                rows.append((scenario, shots, "support_loss retrieved the source task", "", 100.0 * hits / args.new, None))
    print(f"TaskRetrieval on sinusoid: MAML meta-trained {args.meta_steps} steps "
          f"({train_minutes:.1f} min), {args.known} remembered tasks, {args.new} new tasks per row\n")
    print("| tasks | K | start from | steps | query MSE |")
    print("|---|---|---|---|---|")
    for scenario, shots, start_from, steps, mean, half in rows:
        value = f"{mean:.3f} ± {half:.3f}" if half is not None else f"{mean:.0f}%"
        print(f"| {scenario} | {shots} | {start_from} | {steps} | {value} |")


if __name__ == "__main__":
    main()
