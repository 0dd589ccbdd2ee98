import numpy as np
import pytest
from molecule_fixtures import COMMON_MOLECULES, TASKS, write_molecule_csv

from fewshot.datasets import load_moleculenet, split_tasks
from fewshot.datasets.moleculenet import (
    TOX21_TASKS,
    MoleculeTable,
    fetch,
    parse_task_spec,
)


@pytest.fixture
def csv_path(tmp_path):
    return write_molecule_csv(tmp_path / "toy.csv")


def test_tasks_ids_and_missing_cells_are_read_from_the_header(csv_path):
    table = load_moleculenet(csv_path)
    assert table.tasks == TASKS
    assert table.ignored_columns == ["weight_class"]  # numeric, not 0/1
    assert table.ids[0] == "ethanol" and table.smiles[0] == "CCO"
    assert table.labels.shape == (len(COMMON_MOLECULES) + 3, len(TASKS))
    assert np.isnan(table.labels[0, 0])  # (0 + 0) % 11 == 0 left empty
    assert set(np.unique(table.labels[~np.isnan(table.labels)])) == {0.0, 1.0}
    assert not table.is_tox21


def test_gzipped_csv_reads_the_same(tmp_path, csv_path):
    gz = write_molecule_csv(tmp_path / "toy.csv.gz", gzip=True)
    a, b = load_moleculenet(csv_path), load_moleculenet(gz)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.smiles == b.smiles and b.name == "toy"


def test_a_folder_with_one_csv_is_accepted(tmp_path, csv_path):
    assert load_moleculenet(tmp_path).tasks == TASKS


def test_explicit_tasks_must_be_binary_columns(csv_path):
    with pytest.raises(ValueError, match="Invalid value received for argument `tasks`"):
        load_moleculenet(csv_path, tasks=["weight_class"])
    assert load_moleculenet(csv_path, tasks=["donor"]).labels.shape[1] == 1


def test_missing_smiles_column_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("name,active\nx,1\n")
    with pytest.raises(ValueError, match="has no SMILES column"):
        load_moleculenet(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No MoleculeNet CSV"):
        load_moleculenet(tmp_path / "nope.csv")


def test_download_path_uses_a_local_copy_and_then_the_cache(tmp_path, csv_path):
    url = "https://example.invalid/datasets/toy.csv"
    cache = tmp_path / "cache"
    first = fetch(url, cache_dir=cache, local_copy=csv_path)
    assert first.read_bytes() == csv_path.read_bytes()
    # Offline, with no copy: the cached file is returned, no network needed.
    assert fetch(url, cache_dir=cache) == first
    table = load_moleculenet(url, cache_dir=cache)
    assert table.tasks == TASKS


def test_download_failure_offline_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Could not download"):
        fetch("file:///nonexistent/dir/toy.csv", cache_dir=tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # no partial download left


def test_task_specs_by_name_and_last_n():
    tasks = ["a", "b", "c", "d"]
    assert parse_task_spec("b, d", tasks) == ["b", "d"]
    assert parse_task_spec("last:2", tasks) == ["c", "d"]
    with pytest.raises(ValueError, match=r"unknown tasks \['z'\]"):
        parse_task_spec("a,z", tasks)
    with pytest.raises(ValueError, match="Received: test_tasks='last:4'"):
        parse_task_spec("last:4", tasks)


def _fake_tox21():
    labels = np.zeros((3, 12), np.float32)
    return MoleculeTable(smiles=["C"] * 3, ids=["a", "b", "c"], labels=labels, tasks=list(TOX21_TASKS))


def test_tox21_defaults_to_the_published_protocol():
    split = split_tasks(_fake_tox21(), validation_tasks=2)
    assert split["test"] == ["SR-HSE", "SR-MMP", "SR-p53"]
    assert split["validation"] == ["SR-ARE", "SR-ATAD5"]
    assert split["train"] == list(TOX21_TASKS[:7])
    assert split_tasks(_fake_tox21(), validation_tasks=0)["train"] == list(TOX21_TASKS[:9])


def test_other_data_needs_test_tasks(csv_path):
    table = load_moleculenet(csv_path)
    with pytest.raises(ValueError, match="required for data other than Tox21"):
        split_tasks(table)
    split = split_tasks(table, "last:2", validation_tasks="donor")
    assert split == {"train": ["lipophilic", "aromatic", "heavy"], "validation": ["donor"],
                     "test": ["nitrogen", "ring"]}
    with pytest.raises(ValueError, match="Received: validation_tasks=4"):
        split_tasks(table, "last:2", validation_tasks=4)


def test_missing_markers_are_unmeasured_and_stray_values_are_errors(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("smiles,A,B,weight\nCCO,0,NA,1.5\nCC,1,1,2\nCCC,0,nan,3\nCCCC,1,N/A,4\n")
    table = load_moleculenet(path)
    assert table.tasks == ["A", "B"] and table.ignored_columns == ["weight"]
    np.testing.assert_array_equal(table.labels[:, 1], [np.nan, 1, np.nan, np.nan])
    rows = "".join(f"C{'C' * i},{i % 2},0\n" for i in range(12))
    path.write_text("smiles,A,B\n" + rows + "CCO,?,1\n")
    with pytest.raises(ValueError, match=r"Column 'A' .* 1 other value\(s\), first '\?' in data row 13"):
        load_moleculenet(path)
    assert load_moleculenet(path, tasks=["B"]).tasks == ["B"]  # left out on purpose
