"""Time to export a Conv4 meta-learner as a SavedModel that adapts in its graph.

Issue #5's target: exporting a Conv4 learner takes under 30 s on 2 CPU
cores. Each row builds a fresh learner around `fewshot.models.conv4`
(28x28x1, 5 outputs) and exports it to a new folder with
`fewshot.export_saved_model` (tracing, signatures, variables, all of it),
`--repeats` times; the table gives the median wall and CPU seconds (CPU:
this process, all its threads). The first export in the process also pays
TensorFlow's one-off start-up, so it runs once untimed first.

    python benchmarks/export_time.py
    python benchmarks/export_time.py --repeats 3 --steps 5 10
"""

import argparse
import pathlib
import statistics
import tempfile
import time

TARGET_S = 30.0


def _learner(kind, steps):
    import keras

    import fewshot

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if kind == "protonet":
        learner = fewshot.PrototypicalNetwork(fewshot.models.conv4(input_shape=(28, 28, 1)))
    else:
        backbone = fewshot.models.conv4(input_shape=(28, 28, 1), outputs=5)
        learner = fewshot.MAML(backbone, inner_lr=0.4, inner_steps=steps)
    learner.compile(optimizer="adam", loss=loss)
    return learner


def _time_export(kind, steps, folder):
    import fewshot

    learner = _learner(kind, steps)
    wall, cpu = time.perf_counter(), time.process_time()
    fewshot.export_saved_model(learner, folder)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10],
                        help="MAML inner steps baked into the export, one row each (default: 5 10)")
    parser.add_argument("--repeats", type=int, default=3, help="exports per row; the median is shown")
    args = parser.parse_args(argv)
    rows = [("MAML", steps) for steps in args.steps] + [("protonet", None)]
    with tempfile.TemporaryDirectory(prefix="export-time-") as tmp:
        tmp = pathlib.Path(tmp)
        _time_export("protonet", None, tmp / "warm-up")
        print(f"| learner (Conv4, 28x28) | wall s (median of {args.repeats}) | CPU s | "
              f"target {TARGET_S:.0f} s |")
        print("|---|---|---|---|")
        for kind, steps in rows:
            times = [_time_export(kind, steps, tmp / f"{kind}-{steps}-{i}") for i in range(args.repeats)]
            wall = statistics.median(t[0] for t in times)
            cpu = statistics.median(t[1] for t in times)
            label = "ProtoNet" if kind == "protonet" else f"MAML, {steps} inner steps"
            verdict = "met" if wall < TARGET_S else "NOT met"
            print(f"| {label} | {wall:.1f} | {cpu:.1f} | {verdict} |", flush=True)


if __name__ == "__main__":
    main()
