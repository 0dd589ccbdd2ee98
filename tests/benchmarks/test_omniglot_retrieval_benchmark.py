"""benchmarks/omniglot_retrieval.py on tiny zips: its three rows, and its first row is the source model's."""

import importlib.util
import pathlib
import re
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "datasets"))
sys.path.insert(0, str(ROOT / "tests" / "recipes"))
from test_omniglot import write_tiny_omniglot  # noqa: E402
from test_omniglot_recipe import RECIPE, _save_learner  # noqa: E402


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("omniglot_retrieval", ROOT / "benchmarks" / "omniglot_retrieval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "cache"))
    data = write_tiny_omniglot(
        tmp_path / "data", alphabets=(("Alpha", 6), ("Beta", 4)), evaluation=(("Gamma", 5),), drawings=8
    )
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "recipe.toml").write_text(RECIPE + "[task_retrieval]\nmemory_size = 4\n")
    return data, tmp_path / "recipe", tmp_path


def test_three_rows_and_the_empty_memory_row_is_the_source_model(bench, setup, capsys):
    from fewshot.datasets.omniglot import load_omniglot, omniglot_splits
    from fewshot.recipes import omniglot

    data, recipe, tmp_path = setup
    source = _save_learner(tmp_path / "fomaml.keras", "fomaml")
    assert bench.main(["--model", str(tmp_path / "fomaml.keras"), "--data-dir", str(data), "--recipe", str(recipe),
                       "--ways", "3", "--test-episodes", "8"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) ± ([\d.]+) \|$", out, re.M)
    assert [name.split(" (")[0] for name, _, _ in rows] == ["meta-initialisation", "retrieval", "retrieval, body only"]
    assert "retrieval (a memory of 4 validation tasks)" in out and "1 inner steps at 0.4" in out
    # The source model itself on the same episodes: the first row's number.
    images = load_omniglot(data)
    _, _, test_idx = omniglot_splits(images.num_characters, 3, 10)
    test_x, test_y = images.arrays(test_idx, rotations=(0, 1, 2, 3))
    settings = {"eval_steps": 1, "eval_queries": 3, "eval_batch": 4}
    accs = omniglot.evaluate_accuracy(source, test_x, test_y, 3, 1, 8, settings, seed=omniglot.TEST_SEED)
    assert float(rows[0][1]) == pytest.approx(100.0 * np.mean(accs), abs=0.006)


def test_a_model_that_does_not_adapt_like_maml_is_refused(bench, setup, capsys):
    data, recipe, tmp_path = setup
    _save_learner(tmp_path / "protonet.keras", "protonet")
    assert bench.main(["--model", str(tmp_path / "protonet.keras"), "--data-dir", str(data), "--recipe", str(recipe),
                       "--ways", "3"]) == 2
    assert "it is a PrototypicalNetwork, not a MAML or first-order MAML model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--model", "m.keras", "--ways", "0"])
    assert "expected a positive integer. Received: '0'" in capsys.readouterr().err
