"""benchmarks/omniglot.py: its command line (the training it drives is the recipe's, tested there)."""

import importlib.util
import json
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "omniglot.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("omniglot_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("spec", ["maml", "maml:5", "mamll:5:1", "maml:five:1", "maml:5:0", "maml:5:1:2"])
def test_a_bad_cell_is_refused_by_name(bench, spec, capsys):
    with pytest.raises(SystemExit) as stop:
        bench.main(["--cells", spec])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--cells" in err and f"Received: {spec!r}" in err and "algorithm:ways:shots" in err


@pytest.mark.parametrize("budget", ["0", "-3", "soon", "nan"])
def test_the_budget_must_be_positive_minutes(bench, budget, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--budget", budget])
    assert f"expected a positive number of minutes. Received: {budget!r}" in capsys.readouterr().err


def test_cells_parse_and_no_results_is_an_error(bench, tmp_path, capsys):
    assert bench._cell("protonet:20:5") == ("protonet", "20", "5")
    assert bench.main(["--out", str(tmp_path)]) == 2
    assert "does not exist. Give --cells" in capsys.readouterr().err


def test_the_table_shows_each_cell_beside_its_paper(bench, tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps({
        "metrics": {"maml": {"acc_5w1s": 98.75, "acc_5w1s_ci95": 0.19}},
        "config": {"cells": {"maml_5w1s": {"train_minutes": 292.5}}},
    }))
    assert bench.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| maml | 98.75 ± 0.19 (paper 98.7) | (paper 99.9) | (paper 95.8) | (paper 98.9) | 5w1s: 292.5 |" in out
    assert "protonet" not in out
