import json
import re

import numpy as np
import pytest
from scipy import stats

from fewshot import cli
from fewshot.recipes.results import write_results
from fewshot.recipes.summary import summarize_runs, summary_table, t_interval95

# Three seeds of a toy recipe: `meta` beats `bias` in every run, `noisy` does not.
RUNS = {
    0: {"meta": 0.80, "bias": 0.83, "noisy": 0.90},
    1: {"meta": 0.78, "bias": 0.82, "noisy": 0.70},
    2: {"meta": 0.79, "bias": 0.84, "noisy": 0.88},
}


@pytest.fixture
def run_dirs(tmp_path):
    outs = []
    for seed, values in RUNS.items():
        out = tmp_path / f"seed{seed}"
        metrics = {m: {"mae": (v, 0.05), "rmse": (v + 0.2, None)} for m, v in values.items()}
        write_results(out, "toy", "toy data", {"seed": seed}, metrics)
        outs.append(out)
    return outs


def test_t_interval_matches_scipy():
    values = [0.81, 0.79, 0.84, 0.80, 0.78]
    mean, half = t_interval95(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values))
    assert mean - half == pytest.approx(low) and mean + half == pytest.approx(high)
    assert t_interval95([0.5]) == (0.5, None)


def test_summary_values_means_and_paired_differences(run_dirs):
    summary = summarize_runs(run_dirs, "mae", against="bias")
    assert summary.recipe == "toy" and summary.seeds == [0, 1, 2]
    assert list(summary.rows) == ["meta", "bias", "noisy"]
    meta = summary.rows["meta"]
    assert meta.values == pytest.approx([0.80, 0.78, 0.79])
    assert meta.mean == pytest.approx(0.79)
    # Paired over runs: differences -0.03, -0.04, -0.05, so the interval excludes zero ...
    assert meta.difference == pytest.approx(-0.04)
    assert meta.difference + meta.difference_half_width < 0
    # ... while the noisy method's differences (+0.07, -0.12, +0.04) straddle it.
    noisy = summary.rows["noisy"]
    assert noisy.difference - noisy.difference_half_width < 0 < noisy.difference + noisy.difference_half_width
    assert summary.rows["bias"].difference is None


def test_a_method_missing_from_a_run_is_left_blank(tmp_path, run_dirs):
    extra = tmp_path / "seed3"
    write_results(extra, "toy", "toy data", {"seed": 3}, {"meta": {"mae": (0.77, None)}})
    summary = summarize_runs(run_dirs + [extra], "mae")
    assert summary.rows["bias"].values[-1] is None
    assert summary.rows["bias"].mean == pytest.approx(np.mean([0.83, 0.82, 0.84]))
    table = summary_table(summary)
    assert "| seed 3 |" in table.splitlines()[0]
    bias_row = next(line for line in table.splitlines() if line.startswith("| bias |"))
    assert bias_row.split("|")[5].strip() == ""  # the seed-3 column


def test_summary_table_rows(run_dirs):
    table = summary_table(summarize_runs(run_dirs, "mae", against="bias")).splitlines()
    assert table[0].startswith("| method (mae) | seed 0 | seed 1 | seed 2 | mean ± 95% (t, 3 runs) |")
    meta = next(line for line in table if line.startswith("| meta |"))
    assert "0.8000" in meta and "-0.0400 ± " in meta


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"metric": "ndcg3"}, "no run has 'ndcg3'"),
        ({"metric": "mae", "against": "item_mean"}, "`against`"),
    ],
)
def test_bad_metric_or_method_names_the_argument(run_dirs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        summarize_runs(run_dirs, **kwargs)


def test_bad_runs_are_named(tmp_path, run_dirs):
    with pytest.raises(ValueError, match="at least two"):
        summarize_runs(run_dirs[:1], "mae")
    with pytest.raises(ValueError, match="more than once"):
        summarize_runs([run_dirs[0], run_dirs[1], run_dirs[0] / "results.json"], "mae")
    with pytest.raises(FileNotFoundError, match="holds no results.json"):
        summarize_runs([run_dirs[0], tmp_path / "missing"], "mae")
    other = tmp_path / "other"
    write_results(other, "another", "x", {"seed": 0}, {"meta": {"mae": (0.1, None)}})
    with pytest.raises(ValueError, match="different recipes"):
        summarize_runs([run_dirs[0], other], "mae")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text(json.dumps({"metrics": {}}))
    with pytest.raises(ValueError, match="not a fewshot results.json"):
        summarize_runs([run_dirs[0], broken], "mae")
    valid = json.loads((run_dirs[0] / "results.json").read_text())
    for change, problem in [
        ({"config": None}, "'config' is not an object"),
        ({"metrics": []}, "'metrics' is not an object of methods"),
        ({"metrics": {"bias": {"mae": None}}}, "bias.mae is None, not a number"),
        ({"metrics": {"bias": 0.8}}, "metrics of 'bias' are not an object"),
    ]:
        (broken / "results.json").write_text(json.dumps({**valid, **change}))
        with pytest.raises(ValueError, match=re.escape(f"is not a fewshot results.json ({problem})")):
            summarize_runs([run_dirs[0], broken], "mae", against="bias")
    (broken / "results.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=re.escape("(a list, not an object)")):
        summarize_runs([run_dirs[0], broken], "mae")


def test_cli_prints_the_table_draws_the_plot_and_reports_errors_in_one_line(tmp_path, run_dirs, capsys):
    plot = tmp_path / "mae.png"
    assert cli.main(["summarize", *map(str, run_dirs), "--metric", "mae", "--against", "bias",
                     "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| method (mae) |") and "| meta |" in out
    assert f"Wrote {plot}" in out
    from PIL import Image

    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size[0] > 400
    assert cli.main(["summarize", str(run_dirs[0]), "--metric", "mae"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fewshot summarize: error:") and "Traceback" not in err
