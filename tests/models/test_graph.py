import keras
import numpy as np
import pytest

from fewshot.datasets.graph_features import GraphFeaturizer
from fewshot.models import GraphIsomorphismNetwork, gin_encoder

SMILES = ["CC(=O)Oc1ccccc1C(=O)O", "CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21", "CCO", "C#N"]


def _permuted_row(featurizer, smiles, seed):
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    order = np.random.default_rng(seed).permutation(mol.GetNumAtoms()).tolist()
    row, _ = featurizer.pack(Chem.RenumberAtoms(mol, order))
    return row


@pytest.mark.parametrize("edge_features,pooling", [(False, "mean"), (True, "sum")])
def test_graph_embedding_is_invariant_to_the_atom_order(edge_features, pooling):
    featurizer = GraphFeaturizer(max_atoms=24, max_degree=4)
    rows, valid, _ = featurizer(SMILES)
    assert valid.all()
    keras.utils.set_random_seed(0)
    gin = GraphIsomorphismNetwork(24, 4, units=16, depth=3, edge_features=edge_features, pooling=pooling)
    reference = np.asarray(gin(rows))
    for seed in range(3):
        shuffled = np.stack([_permuted_row(featurizer, s, seed) for s in SMILES])
        assert not np.array_equal(shuffled, rows[:, : featurizer.graph_dim])  # really reordered
        np.testing.assert_allclose(np.asarray(gin(shuffled)), reference, atol=1e-5)
    # A molecule's embedding does not depend on the others in the batch.
    np.testing.assert_allclose(np.asarray(gin(rows[2:3])), reference[2:3], atol=1e-5)
    # Different molecules, different embeddings.
    assert np.abs(reference[0] - reference[1]).max() > 1e-3


def test_config_round_trip_and_save_load(tmp_path):
    featurizer = GraphFeaturizer(max_atoms=24, max_degree=4, fingerprint_size=32)
    rows, _, _ = featurizer(SMILES)
    model = gin_encoder(24, 4, units=16, depth=2, embedding=5, hidden=(8,), dropout=0.1,
                        fingerprint_size=32, fingerprint_units=8, edge_features=True, pooling="sum")
    assert model.output_shape == (None, 5)
    gin = model.get_layer("gin")
    config = gin.get_config()
    clone = GraphIsomorphismNetwork.from_config(config)
    assert clone.get_config() == config
    for name in ("max_atoms", "max_degree", "units", "depth", "fingerprint_size",
                 "fingerprint_units", "edge_features", "pooling", "norm"):
        assert getattr(clone, name) == config[name]
    model.save(tmp_path / "gin.keras")
    loaded = keras.saving.load_model(tmp_path / "gin.keras")
    np.testing.assert_allclose(loaded.predict(rows, verbose=0), model.predict(rows, verbose=0), atol=1e-6)


def test_bad_arguments_are_keras_style_errors():
    with pytest.raises(ValueError, match=r"Expected one of \['sum', 'mean'\]. Received: pooling='max'"):
        GraphIsomorphismNetwork(10, pooling="max")
    with pytest.raises(ValueError, match=r"Received: depth=0"):
        GraphIsomorphismNetwork(10, depth=0)
    gin = GraphIsomorphismNetwork(10, 4)
    with pytest.raises(ValueError, match=r"150 values were expected .*Received: input_shape=\(None, 99\)"):
        gin.build((None, 99))


def test_gradients_reach_every_weight():
    import tensorflow as tf

    featurizer = GraphFeaturizer(max_atoms=24, max_degree=4, fingerprint_size=16)
    rows, _, _ = featurizer(SMILES)
    model = gin_encoder(24, 4, units=8, depth=2, embedding=2, fingerprint_size=16,
                        fingerprint_units=4, edge_features=True)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(rows)))
    grads = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in grads)
    assert all(float(tf.reduce_max(tf.abs(tf.convert_to_tensor(g)))) > 0 for g in grads)
