"""The results.json schema shared by every recipe."""

import json
import pathlib


def write_results(out_dir, recipe, dataset, config, metrics):
    """Writes ``results.json`` in the shared schema and returns its path.

    The schema is ``{"recipe": str, "dataset": str, "config": {...},
    "metrics": {METHOD: {METRIC: value, METRIC + "_ci95": half_width}}}``.

    Args:
        out_dir: output folder (created if missing).
        recipe: recipe name, for example ``"sinusoid"``.
        dataset: dataset name, for example ``"sinusoid (Finn et al. 2017)"``.
        config: the configuration the run used (JSON-serialisable).
        metrics: ``{method: {metric: (mean, half_width_or_None)}}``.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    flat = {}
    for method, values in metrics.items():
        flat[method] = {}
        for name, (mean, half) in values.items():
            flat[method][name] = float(mean)
            if half is not None:
                flat[method][name + "_ci95"] = float(half)
    payload = {"recipe": recipe, "dataset": dataset, "config": config, "metrics": flat}
    path = out_dir / "results.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path


def markdown_table(metrics, metric_names, methods=None, fmt="{:.3f}", notes=None):
    """A markdown table: one row per method, ``mean ± ci95`` per metric.

    ``notes`` (``{method: {metric: text}}``) appends text to a cell, or fills
    a cell that has no value.
    """
    notes = notes or {}
    methods = list(methods or metrics)
    lines = [
        "| method | " + " | ".join(metric_names) + " |",
        "|---|" + "---|" * len(metric_names),
    ]
    for method in methods:
        cells = []
        for name in metric_names:
            note = notes.get(method, {}).get(name, "")
            if name not in metrics.get(method, {}):
                cells.append(note.strip())
                continue
            mean, half = metrics[method][name]
            cell = fmt.format(mean)
            if half is not None:
                cell += " ± " + fmt.format(half)
            cells.append(cell + note)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
