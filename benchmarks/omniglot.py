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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default="runs/omniglot")
    parser.add_argument("--cells", nargs="*", default=[], help="algorithm:ways:shots")
    parser.add_argument("--budget", type=float, default=5.0, help="minutes per cell")
    parser.add_argument("--eval-ways", nargs="*", default=None)
    args = parser.parse_args(argv)
    for spec in args.cells:
        algorithm, ways, shots = spec.split(":")
        command = ["run", "recipes/omniglot", "--algorithm", algorithm, "--ways", ways,
                   "--shots", shots, "--out", args.out, "--time-budget", str(args.budget)]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        if args.eval_ways and algorithm in ("protonet", "siamese"):
            command += ["--eval-ways", *args.eval_ways]
        print(f"== fewshot {' '.join(command)}", flush=True)
        code = cli.main(command)
        if code:
            print(f"cell {spec} failed with exit code {code}", file=sys.stderr)
    path = pathlib.Path(args.out) / "results.json"
    if path.is_file():
        print(table(path))


if __name__ == "__main__":
    main()
