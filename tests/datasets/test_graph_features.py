import numpy as np
import pytest

from fewshot.datasets.featurize import featurize_cached, featurizer_from_config
from fewshot.datasets.graph_features import ATOM_FIELDS, GraphFeaturizer, max_atoms_of


def test_rows_have_the_layout_and_padding():
    featurizer = GraphFeaturizer(max_atoms=12, max_degree=4)
    rows, valid, errors = featurizer(["CC(=O)O", "c1ccccc1"])
    assert rows.shape == (2, 12 * (len(ATOM_FIELDS) + 8)) == (2, featurizer.dim)
    assert rows.dtype == np.float32 and valid.all() and errors == {}
    atoms, neighbours, bonds, fingerprint = featurizer.unpack(rows)
    assert fingerprint.shape == (2, 0)
    # Acetic acid: 4 atoms, the rest of the slots empty (code 0, neighbours -1).
    assert (atoms[0, :4, 0] > 0).all() and not atoms[0, 4:].any()
    assert (neighbours[0, 4:] == -1).all() and (bonds[0, 4:] == -1).all()
    # The carbonyl carbon (atom 1) has 3 neighbours: C0, O2 (double), O3.
    assert sorted(neighbours[0, 1, :3].tolist()) == [0.0, 2.0, 3.0]
    assert neighbours[0, 1, 3] == -1
    assert 1.0 in bonds[0, 1].tolist()  # a double bond
    # Benzene: aromatic bonds (3) and aromatic, in-ring atoms (codes shifted by one).
    assert set(bonds[1, :6, :2].ravel().tolist()) == {3.0}
    assert (atoms[1, :6, ATOM_FIELDS.index("aromatic")] == 2).all()
    assert (atoms[1, :6, ATOM_FIELDS.index("ring")] == 2).all()


def test_neighbour_lists_are_symmetric():
    featurizer = GraphFeaturizer(max_atoms=40, max_degree=6)
    rows, _, _ = featurizer(["CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21"])
    _, neighbours, _, _ = featurizer.unpack(rows)
    edges = {(i, int(j)) for i in range(40) for j in neighbours[0, i] if j >= 0}
    assert edges and all((j, i) in edges for i, j in edges)


def test_invalid_and_too_large_molecules_are_flagged_not_truncated():
    featurizer = GraphFeaturizer(max_atoms=7, max_degree=4)
    rows, valid, errors = featurizer(["CCO", "C1CC", "", "CCCCCCCC", "FS(F)(F)(F)(F)F"])
    assert valid.tolist() == [True, False, False, False, False]
    assert errors[1] == "RDKit could not parse the SMILES" and errors[2] == "empty SMILES"
    assert errors[3] == "the molecule has 8 heavy atoms, more than max_atoms=7"
    assert errors[4] == "atom 1 (S) has 6 neighbours, more than max_degree=4"
    assert not rows[1:].any()
    assert max_atoms_of(["CCO", "FS(F)(F)(F)(F)F", "bad"]) == (7, 6)


def test_hybrid_rows_append_the_morgan_counts():
    from fewshot.datasets import Featurizer

    featurizer = GraphFeaturizer(max_atoms=10, max_degree=4, fingerprint_size=64)
    rows, _, _ = featurizer(["c1ccccc1O"])
    _, _, _, fingerprint = featurizer.unpack(rows)
    expected, _, _ = Featurizer(size=64)(["c1ccccc1O"])
    np.testing.assert_array_equal(fingerprint, expected)


def test_config_round_trips_and_bad_settings_name_the_argument(tmp_path):
    featurizer = GraphFeaturizer(max_atoms=20, max_degree=5, fingerprint_size=32)
    config = featurizer.get_config()
    assert config["kind"] == "graph"
    assert featurizer_from_config(config) == featurizer
    assert featurizer_from_config({"kind": "morgan_bits", "size": 16}).size == 16
    with pytest.raises(ValueError, match=r"Expected a positive integer. Received: max_atoms=0"):
        GraphFeaturizer(max_atoms=0)
    with pytest.raises(ValueError, match=r"Received: kind='morgan_count'"):
        GraphFeaturizer(kind="morgan_count")
    # Cached like the fingerprints, keyed by the settings.
    first = featurize_cached(["CCO", "xyz"], featurizer, cache_dir=tmp_path)
    second = featurize_cached(["CCO", "xyz"], featurizer, cache_dir=tmp_path)
    np.testing.assert_array_equal(first[0], second[0])
    assert second[2] == {1: "RDKit could not parse the SMILES"}
