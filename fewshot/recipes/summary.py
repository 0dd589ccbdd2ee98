"""One recipe run over several seeds: each method's metric across the runs.

A recipe's test set is one draw (116 new users on MovieLens-100K, one set
of test assays on Tox21), so a single run's number moves with its seed.
`summarize_runs` reads the ``results.json`` of runs that differ only in
``--seed`` and gives, per method, the value of each run, their mean and a
95% Student-t interval over runs; with ``against=`` also the paired
difference from another method (same run, same test tasks), whose interval
says whether one method beats another across seeds rather than on one.
``fewshot summarize OUT...`` prints it as a markdown table (`summary_table`)
and can draw it (`summary_plot`: each run a dot, the mean and its interval a
bar, one line per method).

Example:

>>> import tempfile
>>> from fewshot.recipes.results import write_results
>>> from fewshot.recipes.summary import summarize_runs
>>> outs = []
>>> for seed, (a, b) in enumerate([(0.80, 0.83), (0.78, 0.82), (0.79, 0.84)]):
...     out = tempfile.mkdtemp()
...     _ = write_results(out, "toy", "toy", {"seed": seed},
...                       {"a": {"mae": (a, None)}, "b": {"mae": (b, None)}})
...     outs.append(out)
>>> summary = summarize_runs(outs, "mae", against="b")
>>> round(summary.rows["a"].mean, 3), round(summary.rows["a"].difference, 3)
(0.79, -0.04)
"""

import dataclasses
import json
import pathlib

import numpy as np
from scipy import stats


@dataclasses.dataclass
class MethodSummary:
    """One method's metric across runs.

    Attributes:
        values: the metric in each run, in the order of the runs (None where
            the run has no value for this method).
        mean: mean over the runs that have a value.
        half_width: half-width of the 95% Student-t interval of the mean
            (None with fewer than two values).
        difference: mean of (this method - `against`) over runs that have
            both (None without `against`).
        difference_half_width: its 95% Student-t half-width.
    """

    values: list
    mean: float
    half_width: float = None
    difference: float = None
    difference_half_width: float = None


@dataclasses.dataclass
class RunsSummary:
    """The summary of several runs of one recipe for one metric."""

    recipe: str
    metric: str
    seeds: list
    rows: dict
    against: str = None


def t_interval95(values):
    """Mean and 95% Student-t half-width of a few values (None for one value).

    Example:

    >>> from fewshot.recipes.summary import t_interval95
    >>> mean, half = t_interval95([1.0, 2.0, 3.0])
    >>> round(mean, 3), round(half, 3)
    (2.0, 2.484)
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return float(values.mean()), None
    sem = values.std(ddof=1) / np.sqrt(values.size)
    return float(values.mean()), float(stats.t.ppf(0.975, values.size - 1) * sem)


def _results_path(out):
    path = pathlib.Path(out)
    return path / "results.json" if path.is_dir() else path


def _read(out):
    path = _results_path(out)
    if not path.is_file():
        raise FileNotFoundError(
            f"Invalid value received for `runs`: {str(out)!r} holds no results.json "
            "(pass a recipe's --out folder or its results.json)."
        )
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        problem = f"{type(error).__name__}: {error}"
    else:
        problem = _schema_problem(payload)
    if problem:
        raise ValueError(
            f"Invalid value received for `runs`: {str(path)!r} is not a fewshot results.json "
            f"({problem})."
        )
    return payload["recipe"], payload.get("config", {}).get("seed"), payload["metrics"]


def _schema_problem(payload):
    """What is wrong with a parsed results.json, or "" if nothing."""
    if not isinstance(payload, dict):
        return f"a {type(payload).__name__}, not an object"
    for key in ("recipe", "metrics"):
        if key not in payload:
            return f"no {key!r} entry"
    if not isinstance(payload["recipe"], str):
        return f"'recipe' is {payload['recipe']!r}, not a name"
    if not isinstance(payload.get("config", {}), dict):
        return "'config' is not an object"
    if not isinstance(payload["metrics"], dict):
        return "'metrics' is not an object of methods"
    for method, values in payload["metrics"].items():
        if not isinstance(values, dict):
            return f"metrics of {method!r} are not an object"
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{method}.{name} is {value!r}, not a number"
    return ""


def summarize_runs(runs, metric, against=None):
    """Each method's `metric` across the runs of one recipe.

    Args:
        runs: the runs' output folders (or their ``results.json`` paths), at
            least two, all of the same recipe.
        metric: a metric name of the recipe's schema, e.g. ``"mae"``.
        against: optional method; each row then also holds its mean paired
            difference from this method over the runs.

    Returns:
        A `RunsSummary` whose ``rows`` map each method (in the first run's
        order) to a `MethodSummary`.

    Raises:
        ValueError: fewer than two runs, a run given twice, runs of different
            recipes, a metric or `against` method no run has.
        FileNotFoundError: a run without results.json.
    """
    runs = list(runs)
    if len(runs) < 2:
        raise ValueError(
            f"Invalid value received for `runs`: an interval across runs needs at least two. "
            f"Received: runs={runs!r}"
        )
    resolved = [_results_path(run).resolve() for run in runs]
    repeated = sorted({str(p) for p in resolved if resolved.count(p) > 1})
    if repeated:
        raise ValueError(
            f"Invalid value received for `runs`: the same run is given more than once, "
            f"which would count it twice. Received: {repeated}"
        )
    loaded = [_read(run) for run in runs]
    recipes = sorted({recipe for recipe, _, _ in loaded})
    if len(recipes) > 1:
        raise ValueError(
            f"Invalid value received for `runs`: they come from different recipes {recipes}; "
            "summarise runs of one recipe."
        )
    methods = []
    for _, _, metrics in loaded:
        methods += [m for m, values in metrics.items() if metric in values and m not in methods]
    if not methods:
        known = sorted({name for _, _, metrics in loaded for v in metrics.values() for name in v})
        raise ValueError(
            f"Invalid value received for `metric`: no run has {metric!r}. "
            f"Metrics in these runs: {known}."
        )
    if against is not None and against not in methods:
        raise ValueError(
            f"Invalid value received for `against`: no run has method {against!r} with "
            f"{metric!r}. Methods: {methods}."
        )
    rows = {}
    for method in methods:
        values = [metrics.get(method, {}).get(metric) for _, _, metrics in loaded]
        present = [v for v in values if v is not None]
        mean, half = t_interval95(present)
        row = MethodSummary(values=values, mean=mean, half_width=half)
        if against is not None and method != against:
            diffs = [
                metrics[method][metric] - metrics[against][metric]
                for _, _, metrics in loaded
                if metric in metrics.get(method, {}) and metric in metrics.get(against, {})
            ]
            if diffs:
                row.difference, row.difference_half_width = t_interval95(diffs)
        rows[method] = row
    return RunsSummary(
        recipe=recipes[0], metric=metric, seeds=[seed for _, seed, _ in loaded], rows=rows,
        against=against,
    )


def summary_table(summary, fmt="{:.4f}"):
    """The summary as a markdown table: a column per run, the mean ± interval,
    and the paired difference when `against` was given."""

    def cell(value, half=None):
        if value is None:
            return ""
        text = fmt.format(value)
        return text + (" ± " + fmt.format(half) if half is not None else "")

    heads = [f"seed {seed}" if seed is not None else f"run {i + 1}" for i, seed in enumerate(summary.seeds)]
    heads.append(f"mean ± 95% (t, {len(summary.seeds)} runs)")
    if summary.against:
        heads.append(f"minus {summary.against}, paired")
    lines = [
        f"| method ({summary.metric}) | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(heads),
    ]
    for method, row in summary.rows.items():
        cells = [cell(v) for v in row.values] + [cell(row.mean, row.half_width)]
        if summary.against:
            cells.append(cell(row.difference, row.difference_half_width))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_plot(summary, path):
    """Draws the summary: per method, each run's value as a dot and the mean
    with its 95% interval as a bar; writes a PNG to `path` and returns it.

    Methods are sorted by their mean, best (lowest) at the top for error
    metrics such as MAE; pass the summary of a higher-is-better metric and
    the best is at the bottom, so read the axis label.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(summary.rows.items(), key=lambda item: item[1].mean, reverse=True)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.4))
    for y, (method, row) in enumerate(rows):
        values = [v for v in row.values if v is not None]
        ax.plot(values, [y] * len(values), "o", color="tab:blue", alpha=0.45, ms=5,
                label="one run" if y == 0 else None)
        ax.errorbar(row.mean, y, xerr=row.half_width or 0.0, fmt="s", color="black", ms=5,
                    capsize=4, label="mean, 95% t-interval" if y == 0 else None)
    ax.set_yticks(range(len(rows)), [method for method, _ in rows])
    ax.set_xlabel(summary.metric)
    seeds = ", ".join(str(s) for s in summary.seeds)
    ax.set_title(f"{summary.recipe}: {summary.metric} over {len(summary.seeds)} runs (seeds {seeds})",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
