import csv

import numpy as np
import pytest
from molecule_fixtures import COMMON_MOLECULES, write_molecule_csv

from fewshot.datasets import Featurizer, featurize_table, load_moleculenet
from fewshot.datasets.featurize import featurize_cached, write_report


def test_count_and_bit_fingerprints():
    counts, valid, errors = Featurizer(kind="morgan_count", radius=2, size=256)(["CCO", "c1ccccc1"])
    bits, _, _ = Featurizer(kind="morgan_bits", radius=2, size=256)(["CCO", "c1ccccc1"])
    assert counts.shape == (2, 256) and counts.dtype == np.float32
    assert valid.all() and errors == {}
    np.testing.assert_array_equal(counts > 0, bits > 0)  # the same folded bits
    assert set(np.unique(bits)) <= {0.0, 1.0}
    # Benzene: 6 identical atoms, so a count above one somewhere.
    assert counts[1].max() > np.log1p(1.0)


def test_radius_changes_the_features():
    r1, _, _ = Featurizer(radius=1, size=512)(["CCOc1ccccc1"])
    r3, _, _ = Featurizer(radius=3, size=512)(["CCOc1ccccc1"])
    assert (r3 > 0).sum() > (r1 > 0).sum()


def test_invalid_smiles_are_flagged_not_dropped():
    features, valid, errors = Featurizer(size=64)(["CCO", "C1CC", "", "xyz"])
    assert valid.tolist() == [True, False, False, False]
    assert sorted(errors) == [1, 2, 3] and errors[2] == "empty SMILES"
    assert not features[1:].any()


def test_descriptors_are_appended_and_finite():
    featurizer = Featurizer(size=64, descriptors=True)
    features, valid, _ = featurizer(["CC(=O)Oc1ccccc1C(=O)O"])
    assert features.shape == (1, featurizer.dim) and featurizer.dim > 64 + 100
    assert np.isfinite(features).all()


def test_bad_settings_name_the_argument():
    with pytest.raises(ValueError, match="Invalid value received for argument `kind`. Expected one of"):
        Featurizer(kind="maccs")
    with pytest.raises(ValueError, match="Received: size=0"):
        Featurizer(size=0)


def test_features_are_cached(tmp_path):
    featurizer = Featurizer(size=128)
    smiles = [s for _, s in COMMON_MOLECULES[:10]] + ["C1CC"]
    first = featurize_cached(smiles, featurizer, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    second = featurize_cached(smiles, featurizer, cache_dir=tmp_path)
    np.testing.assert_array_equal(first[0], second[0])
    assert second[2] == {10: "RDKit could not parse the SMILES"}
    featurize_cached(smiles, Featurizer(size=64), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2  # other settings, other entry


def test_table_featurisation_reports_invalid_rows_and_merges_duplicates(tmp_path):
    table = load_moleculenet(write_molecule_csv(tmp_path / "toy.csv"))
    molecules = featurize_table(table, Featurizer(size=128), cache_dir=tmp_path / "cache")
    report = molecules.report
    assert report["rows"] == len(COMMON_MOLECULES) + 3
    assert [item["id"] for item in report["invalid"]] == ["broken_ring", "not_smiles"]
    # "OCC" is ethanol again: one molecule holding both rows.
    assert len(report["duplicates"]) == 1
    assert report["duplicates"][0]["ids"] == ["ethanol", "ethanol_again"]
    assert len(molecules.smiles) == len(COMMON_MOLECULES)
    assert molecules.features.shape == (len(COMMON_MOLECULES), 128)
    # The merge fills the ethanol label left empty in its first row.
    assert not np.isnan(molecules.labels[0, 0])
    invalid_csv, duplicates_csv = write_report(report, tmp_path / "out")
    rows = list(csv.DictReader(open(invalid_csv)))
    assert [r["smiles"] for r in rows] == ["C1CC", "hello world"]
    assert "ethanol;ethanol_again" in duplicates_csv.read_text()


@pytest.mark.parametrize("smiles", ["c1ccccc1 O", "C C C", "CC(=O)O\tNa"])
def test_smiles_with_whitespace_is_invalid_not_cut_short(smiles):
    # RDKit alone reads "c1ccccc1 O" as benzene named "O".
    features, valid, errors = Featurizer(size=16)(["CCO", smiles])
    assert valid.tolist() == [True, False]
    assert "space or tab" in errors[1]


def test_numpy_integer_settings_keep_the_cache_working(tmp_path):
    featurizer = Featurizer(size=np.int64(32), radius=np.int32(1))
    assert type(featurizer.size) is int and type(featurizer.radius) is int
    _, valid, _ = featurize_cached(["CCO"], featurizer, tmp_path)
    assert valid.tolist() == [True]
