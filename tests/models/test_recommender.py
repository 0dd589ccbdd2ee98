import keras
import numpy as np
import pytest

import fewshot
from fewshot.models.recommender import FeatureEmbedding, decision_layer_names, recommender

SIZES = {"item": 12, "age": 8, "gender": 3, "occupation": 5, "year": 10}


def _x(n=6, seed=0):
    rng = np.random.default_rng(seed)
    codes = np.column_stack([rng.integers(0, s, n) for s in SIZES.values()])
    return np.column_stack([codes, rng.integers(0, 2, (n, 4))]).astype("float32")


def test_shapes_layer_names_and_head_bias():
    model = recommender(SIZES, num_genres=4, embedding_dim=8, hidden=(16, 8), rating_mean=3.6)
    assert model.input_shape == (None, 9) and model.output_shape == (None, 1)
    assert decision_layer_names(model) == ["decision_1", "decision_2", "head"]
    np.testing.assert_allclose(model.get_layer("head").bias.numpy(), [3.6])
    assert model(_x()).shape == (6, 1)


def test_config_round_trip_and_saving(tmp_path):
    model = recommender(SIZES, num_genres=4, embedding_dim=8)
    layer = model.get_layer("embedding")
    again = FeatureEmbedding.from_config(layer.get_config())
    assert again.vocabulary_sizes == SIZES and again.num_genres == 4 and again.embedding_dim == 8
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded(_x()).numpy(), model(_x()).numpy(), rtol=1e-6)


def test_frozen_embeddings_stay_frozen_after_loading(tmp_path):
    """A MetaSGD around a frozen embedding reloads with the same rates."""
    model = recommender(SIZES, num_genres=4, embedding_dim=8)
    model.get_layer("embedding").trainable = False
    learner = fewshot.MetaSGD(model, inner_lr=0.1)
    learner.compile(optimizer="adam", loss="mae")
    assert len(model.trainable_variables) == 6  # decision layers and head
    learner.save(tmp_path / "meta_sgd.keras")
    loaded = keras.saving.load_model(tmp_path / "meta_sgd.keras")
    assert len(loaded.backbone.trainable_variables) == 6
    for a, b in zip(loaded.learned_rates, learner.learned_rates):
        np.testing.assert_allclose(a.numpy(), b.numpy())


def test_maml_adapts_only_the_decision_layers():
    backbone = recommender(SIZES, num_genres=4, embedding_dim=4, hidden=(8,))
    learner = fewshot.MAML(backbone, inner_lr=0.1, inner_steps=1,
                           adapt_layers=decision_layer_names(backbone))
    learner.compile(loss="mse")
    adapted = learner.adapt(_x(), np.full((6, 1), 5.0, "float32"))
    before = {w.path: w.numpy() for w in backbone.weights}
    changed = [w.path for w in adapted.weights if not np.allclose(w.numpy(), before[w.path])]
    assert changed and all("decision_" in p or "head" in p for p in changed)
    assert adapted.adaptation_loss[-1] < adapted.adaptation_loss[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocabulary_sizes": {"item": 3}}, "Expected a positive size for each of"),
        ({"num_genres": 0}, "Received: num_genres=0"),
        ({"embedding_dim": -1}, "Received: embedding_dim=-1"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    args = {"vocabulary_sizes": SIZES, "num_genres": 4, "embedding_dim": 8}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        FeatureEmbedding(**args)
    with pytest.raises(ValueError, match=r"Received: hidden=\(\)"):
        recommender(SIZES, 4, hidden=())
