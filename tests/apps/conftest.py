"""Models for the app tests, trained by the tests themselves (never from runs/)."""

import pathlib

import keras
import pytest

APP = pathlib.Path(__file__).resolve().parents[2] / "apps" / "fewshot_app.py"


def _tiny_maml(meta_steps=40):
    import fewshot
    from fewshot.models.mlp import mlp

    keras.utils.set_random_seed(0)
    learner = fewshot.MAML(mlp(input_shape=(1,), hidden=(16, 16), outputs=1), inner_lr=0.01, inner_steps=1)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    stream = fewshot.episodes.Sinusoid().stream(meta_batch_size=4, batches_per_epoch=meta_steps, seed=0)
    learner.fit(stream, epochs=1, verbose=0)
    return learner


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """``runs``-like folder: ``sin/models/{maml,pretrained}.keras``."""
    from fewshot.models.mlp import mlp

    root = tmp_path_factory.mktemp("runs")
    (root / "sin" / "models").mkdir(parents=True)
    _tiny_maml().save(root / "sin" / "models" / "maml.keras")
    plain = mlp(input_shape=(1,), hidden=(8,), outputs=1, name="pretrained")
    plain.compile(optimizer="adam", loss="mse")
    plain.save(root / "sin" / "models" / "pretrained.keras")
    return root


@pytest.fixture(scope="session")
def molecule_models_dir(tmp_path_factory):
    """A ``runs``-like folder with a tiny ProtoNet molecule model."""
    pytest.importorskip("rdkit", reason="the molecule flow needs RDKit (pip install fewshot[chem])")
    import fewshot
    from fewshot.datasets.featurize import Featurizer
    from fewshot.models.fingerprint import fingerprint_encoder
    from fewshot.predict_molecules import save_molecule_model

    root = tmp_path_factory.mktemp("mol_runs")
    featurizer = Featurizer(size=64)
    keras.utils.set_random_seed(0)
    learner = fewshot.PrototypicalNetwork(fingerprint_encoder(64, hidden=(16,), embedding=8))
    learner.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    save_molecule_model(learner, featurizer, root / "drug" / "models" / "protonet", "protonet")
    return root


@pytest.fixture(scope="session")
def image_models_dir(tmp_path_factory):
    """``img/models/{protonet,maml2way}.keras`` on 8x8 grey images."""
    import fewshot

    root = tmp_path_factory.mktemp("img_runs")
    (root / "img" / "models").mkdir(parents=True)
    keras.utils.set_random_seed(0)
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    encoder = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(8, name="head")], name="enc"
    )
    protonet = fewshot.PrototypicalNetwork(encoder)
    protonet.compile(optimizer="adam", loss=sparse)
    protonet.save(root / "img" / "models" / "protonet.keras")
    classifier = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(2, name="head")], name="clf"
    )
    maml = fewshot.MAML(classifier, inner_lr=0.1, inner_steps=2)
    maml.compile(optimizer="adam", loss=sparse, metrics=["accuracy"])
    maml.save(root / "img" / "models" / "maml2way.keras")
    return root


@pytest.fixture(scope="session")
def ratings_setup(tmp_path_factory):
    """A tiny MovieLens-100K-format folder and ``rec/models/maml.keras`` trained on it.

    Returns ``(models_root, data_folder)``. The model is a MAML over the
    recommender backbone, meta-trained for a few steps, saved with the
    ``.json`` of adaptation settings the personalization recipe writes.
    """
    import json

    import fewshot
    from fewshot.datasets import load_movielens
    from fewshot.datasets.movielens import write_tiny_movielens
    from fewshot.datasets.user_tasks import RatingFeatures, episode_stream, user_tasks
    from fewshot.models.recommender import decision_layer_names

    root = tmp_path_factory.mktemp("rec")
    data_dir = write_tiny_movielens(root / "data", num_users=12, num_items=30)
    data = load_movielens(data_dir)
    features = RatingFeatures.from_movielens(data)
    keras.utils.set_random_seed(0)
    backbone = fewshot.models.recommender(features.vocabulary_sizes(), len(features.genres), 4, (8,))
    learner = fewshot.MAML(backbone, inner_lr=0.05, inner_steps=2, adapt_layers=decision_layer_names(backbone))
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    tasks = user_tasks(data, features, min_ratings=13, query_size=5)
    learner.fit(episode_stream(tasks, meta_batch_size=4, support_size=5, batches_per_epoch=3), epochs=1, verbose=0)
    models = root / "runs" / "rec" / "models"
    models.mkdir(parents=True)
    learner.save(models / "maml.keras")
    (models / "maml.json").write_text(json.dumps({"steps": 3, "inner_lr": None}) + "\n")
    return root / "runs", data_dir


def tabular_data(num_classes=6, per_class=12, features=4, seed=0):
    """Gaussian clusters: ``x float32 [num_classes*per_class, features]``, ``y``, centres."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(num_classes, features)).astype(np.float32)
    y = np.repeat(np.arange(num_classes), per_class)
    x = (centres[y] + rng.normal(0.0, 0.5, size=(len(y), features))).astype(np.float32)
    return x, y.astype(np.int32), centres


@pytest.fixture(scope="session")
def tabular_models_dir(tmp_path_factory):
    """Tabular classifiers on 4 features, meta-trained for a few steps.

    ``tab/models/protonet.keras`` (any number of classes),
    ``tab/models/maml3way.keras`` (MAML over an MLP with 3 outputs,
    sparse cross-entropy) and their exports ``exported/{protonet,maml3way}_sm``.
    """
    import fewshot
    from fewshot.models.mlp import mlp

    root = tmp_path_factory.mktemp("tab_runs")
    models = root / "tab" / "models"
    models.mkdir(parents=True)
    x, y, _ = tabular_data()
    stream = fewshot.episodes.EpisodeSampler(x, y, ways=3, shots=2, queries=3).stream(
        meta_batch_size=2, batches_per_epoch=5
    )
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    keras.utils.set_random_seed(0)
    protonet = fewshot.PrototypicalNetwork(mlp(input_shape=(4,), hidden=(16,), outputs=8))
    protonet.compile(optimizer="adam", loss=sparse)
    protonet.fit(stream, epochs=1, verbose=0)
    protonet.save(models / "protonet.keras")
    maml = fewshot.MAML(mlp(input_shape=(4,), hidden=(16,), outputs=3), inner_lr=0.1, inner_steps=2)
    maml.compile(optimizer="adam", loss=sparse, metrics=["accuracy"])
    maml.fit(stream, epochs=1, verbose=0)
    maml.save(models / "maml3way.keras")
    fewshot.export_saved_model(protonet, root / "exported" / "protonet_sm")
    fewshot.export_saved_model(maml, root / "exported" / "maml3way_sm")
    return root
