"""Train and test Omniglot cells one after another, then print the table.

    python benchmarks/omniglot.py --data-dir DIR --out runs/omniglot \\
        --cells protonet:5:1 maml:5:1 --budget 5

Each cell is ``algorithm:ways:shots`` and runs `fewshot run recipes/omniglot`
with ``--time-budget`` minutes (resuming from the cell's checkpoint when it
exists); the table is read from ``OUT/results.json`` next to the published
numbers of ANCHORS.md.
"""

import argparse
import json
import pathlib
import sys

from fewshot import cli

# Published test accuracies (ANCHORS.md): method -> (5w1s, 5w5s, 20w1s, 20w5s).
PAPERS = {
    "maml": (98.7, 99.9, 95.8, 98.9),
    "fomaml": (98.3, 99.2, 89.4, 97.9),
    "metasgd": (99.5, 99.9, 95.9, 99.0),
    "reptile": (97.68, 99.48, 89.43, 97.12),
    "protonet": (98.8, 99.7, 96.0, 98.9),
    "siamese": (None, None, 92.0, None),
    "anil": (None, None, None, None),
    "task_retrieval": (None, None, None, None),
}
METRICS = ("acc_5w1s", "acc_5w5s", "acc_20w1s", "acc_20w5s")


def table(results_path):
    results = json.loads(pathlib.Path(results_path).read_text())
    cells = results.get("config", {}).get("cells", {})
    lines = [
        "| method | " + " | ".join(METRICS) + " | train minutes |",
        "|---|" + "---|" * (len(METRICS) + 1),
    ]
    for method, paper in PAPERS.items():
        values = results["metrics"].get(method)
        if not values:
            continue
        row = []
        for metric, published in zip(METRICS, paper):
            cell = ""
            if metric in values:
                cell = f"{values[metric]:.2f} ± {values.get(metric + '_ci95', 0):.2f}"
            if published is not None:
                cell += f" (paper {published})"
            row.append(cell.strip())
        minutes = ", ".join(
            f"{name.split('_')[-1]}: {c.get('train_minutes', '?')}"
            for name, c in cells.items()
            if name.rsplit("_", 1)[0] == method
        )
        lines.append(f"| {method} | " + " | ".join(row) + f" | {minutes} |")
    return "\n".join(lines)


def _cell(spec):
    """argparse type of --cells: ``algorithm:ways:shots`` -> ``(algorithm, ways, shots)``."""
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] not in PAPERS or not all(p.isdigit() and int(p) > 0 for p in parts[1:]):
        raise argparse.ArgumentTypeError(
            f"expected algorithm:ways:shots with an algorithm of {list(PAPERS)} and positive "
            f"integer ways and shots, e.g. protonet:5:1. Received: {spec!r}"
        )
    return parts[0], parts[1], parts[2]


def _minutes(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of minutes. Received: {text!r}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None,
                        help="folder with images_background.zip and images_evaluation.zip "
                             "(default $FEWSHOT_OMNIGLOT_DIR, else tfds.load('omniglot'))")
    parser.add_argument("--out", default="runs/omniglot",
                        help="the recipe's output folder: checkpoints to resume and results.json "
                             "(default runs/omniglot)")
    parser.add_argument("--cells", nargs="*", default=[], type=_cell, metavar="ALGORITHM:WAYS:SHOTS",
                        help="cells to train and test in turn, e.g. protonet:5:1 maml:20:1; none: "
                             "only print the table of OUT/results.json")
    parser.add_argument("--budget", type=_minutes, default=5.0,
                        help="minutes of training per cell in this run (default 5)")
    parser.add_argument("--eval-ways", nargs="*", default=None, metavar="N",
                        help="ProtoNet and Siamese cells: also test at these ways, e.g. 5 20")
    args = parser.parse_args(argv)
    failed = []
    for algorithm, ways, shots in args.cells:
        command = ["run", "recipes/omniglot", "--algorithm", algorithm, "--ways", ways,
                   "--shots", shots, "--out", args.out, "--time-budget", str(args.budget)]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        if args.eval_ways and algorithm in ("protonet", "siamese"):
            command += ["--eval-ways", *args.eval_ways]
        print(f"== fewshot {' '.join(command)}", flush=True)
        code = cli.main(command)
        if code:
            failed.append(f"{algorithm}:{ways}:{shots}")
            print(f"cell {failed[-1]} failed with exit code {code}", file=sys.stderr)
    path = pathlib.Path(args.out) / "results.json"
    if path.is_file():
        print(table(path))
    elif not args.cells:
        print(f"No results to show: {path} does not exist. Give --cells to train some.", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
