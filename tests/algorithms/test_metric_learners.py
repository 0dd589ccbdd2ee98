"""Prototypical and Siamese networks: the distances, prototypes and heads are right."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot
from fewshot.algorithms.siamese import contrastive_loss


def _identity_encoder(dim=3):
    inputs = keras.Input((dim,))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def _task():
    support_x = np.array([[0, 0, 0], [0, 2, 0], [4, 0, 0], [4, 0, 2]], "float32")
    support_y = np.array([0, 0, 1, 1], "int32")
    query_x = np.array([[1, 1, 0], [3, 0, 1]], "float32")
    return support_x, support_y, query_x


def test_protonet_logits_are_negative_squared_distances_to_class_means():
    sx, sy, qx = _task()
    protonet = fewshot.PrototypicalNetwork(_identity_encoder())
    logits = protonet.query_predictions(
        {"support_x": sx[None], "support_y": sy[None], "query_x": qx[None], "query_y": np.zeros((1, 2), "int32")}
    ).numpy()[0]
    prototypes = np.array([[0, 1, 0], [4, 0, 1]], "float32")
    expected = -((qx[:, None, :] - prototypes[None]) ** 2).sum(-1)
    np.testing.assert_allclose(logits, expected, rtol=1e-5)


def test_protonet_cosine_and_adapted_classifier_match_batch_predictions():
    sx, sy, qx = _task()
    sx = sx + 0.5
    protonet = fewshot.PrototypicalNetwork(_identity_encoder(), distance="cosine", temperature=0.1)
    batch = {"support_x": sx[None], "support_y": sy[None], "query_x": qx[None], "query_y": np.zeros((1, 2), "int32")}
    logits = protonet.query_predictions(batch).numpy()[0]
    assert logits.max() <= 0.0 and logits.min() >= -20.0
    classifier = protonet.adapt(sx, sy)
    np.testing.assert_allclose(classifier.predict(qx, verbose=0), logits, rtol=1e-5, atol=1e-5)


def test_protonet_rejects_labels_that_are_not_0_to_n_minus_1():
    sx, _, _ = _task()
    protonet = fewshot.PrototypicalNetwork(_identity_encoder())
    with pytest.raises(ValueError, match="Expected integer class labels 0..N-1"):
        protonet.adapt(sx, np.array([0, 0, 2, 2]))


def test_contrastive_loss_values():
    d = tf.constant([0.0, 0.5, 0.5, 2.0])
    same = tf.constant([True, True, False, False])
    np.testing.assert_allclose(contrastive_loss(d, same, 1.0).numpy(), [0.0, 0.125, 0.125, 0.0])


def test_siamese_classifies_by_nearest_support_example():
    sx, sy, qx = _task()
    siamese = fewshot.SiameseNetwork(_identity_encoder(), margin=2.0)
    batch = {"support_x": sx[None], "support_y": sy[None], "query_x": qx[None], "query_y": np.array([[0, 1]], "int32")}
    logits = siamese.query_predictions(batch).numpy()[0]
    d = ((qx[:, None, :] - sx[None]) ** 2).sum(-1)
    expected = np.stack([d[:, :2].min(1), d[:, 2:].min(1)], 1)
    np.testing.assert_allclose(logits, -expected, rtol=1e-5)
    classifier = siamese.adapt(sx, sy)
    np.testing.assert_allclose(classifier.predict(qx, verbose=0), -expected, rtol=1e-5)
    # The pair loss: every within-episode pair, positives and negatives weighted equally.
    siamese.compile()
    loss, _ = siamese.meta_loss(batch, training=False)
    assert float(loss) > 0.0


def test_embed_returns_flat_embeddings():
    encoder = fewshot.models.mlp(input_shape=(3,), hidden=(4,), outputs=5)
    protonet = fewshot.PrototypicalNetwork(encoder)
    assert protonet.embed(np.zeros((7, 3), "float32")).shape == (7, 5)


@pytest.mark.parametrize("learner", ["protonet", "siamese"])
def test_adapted_classifier_flattens_an_encoder_of_any_output_shape(learner):
    inputs = keras.Input((6,))
    encoder = keras.Model(inputs, keras.layers.Reshape((2, 3))(keras.layers.Dense(6, use_bias=False)(inputs)))
    model = (fewshot.PrototypicalNetwork if learner == "protonet" else fewshot.SiameseNetwork)(encoder)
    rng = np.random.default_rng(0)
    sx, sy = rng.normal(size=(4, 6)).astype("float32"), np.array([0, 0, 1, 1], "int32")
    qx = rng.normal(size=(5, 6)).astype("float32")
    batch = {"support_x": sx[None], "support_y": sy[None], "query_x": qx[None], "query_y": np.zeros((1, 5), "int32")}
    expected = model.query_predictions(batch).numpy()[0]
    assert expected.shape == (5, 2)
    np.testing.assert_allclose(model.adapt(sx, sy).predict(qx, verbose=0), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("learner", ["protonet", "siamese", "fine_tuner"])
def test_support_and_queries_share_one_training_batch(learner):
    """In training mode BatchNorm normalises support and queries together (Snell et al.)."""
    inputs = keras.Input((3,))
    encoder = keras.Model(inputs, keras.layers.BatchNormalization(center=False, scale=False, epsilon=0.0)(inputs))
    sx, sy, qx = _task()
    model = {
        "protonet": lambda: fewshot.PrototypicalNetwork(encoder),
        "siamese": lambda: fewshot.SiameseNetwork(encoder),
        "fine_tuner": lambda: fewshot.algorithms.FineTuner(encoder),
    }[learner]()
    batch = {"support_x": sx[None], "support_y": sy[None], "query_x": qx[None], "query_y": np.array([[0, 1]], "int32")}
    both = np.concatenate([sx, qx])
    z = (both - both.mean(0)) / both.std(0)
    support_z, query_z = z[:4], z[4:]
    d = ((query_z[:, None, :] - support_z[None]) ** 2).sum(-1)
    if learner == "siamese":
        expected = -np.stack([d[:, :2].min(1), d[:, 2:].min(1)], 1)
    else:
        prototypes = np.stack([support_z[:2].mean(0), support_z[2:].mean(0)])
        expected = -((query_z[:, None, :] - prototypes[None]) ** 2).sum(-1)
    np.testing.assert_allclose(model.query_predictions(batch, training=True).numpy()[0], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("learner", ["protonet", "siamese", "fine_tuner"])
def test_padded_episodes_are_refused_not_counted(learner):
    model = {
        "protonet": lambda: fewshot.PrototypicalNetwork(_identity_encoder()),
        "siamese": lambda: fewshot.SiameseNetwork(_identity_encoder()),
        "fine_tuner": lambda: fewshot.algorithms.FineTuner(_identity_encoder()),
    }[learner]()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    sx, sy, qx = _task()
    batch = {"support_x": sx[None], "support_y": sy[None], "query_x": qx[None],
             "query_y": np.array([[0, 1]], "int32"), "support_weight": np.ones((1, 4), "float32")}
    with pytest.raises(ValueError, match="does not use `support_weight`: the padding rows"):
        model.test_on_batch(batch)


@pytest.mark.parametrize("learner", ["protonet", "siamese"])
@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([[0], [0], [1], [1]]), r"Expected a 1-D array .*Received: support_y.shape=\(4, 1\)"),
        (np.array([0.5, 0.5, 1.5, 1.5]), r"Received: non-integer labels \[0.5, 1.5\]"),
    ],
)
def test_support_labels_must_be_one_integer_per_example(learner, labels, message):
    sx, _, qx = _task()
    model = (fewshot.PrototypicalNetwork if learner == "protonet" else fewshot.SiameseNetwork)(_identity_encoder())
    with pytest.raises(ValueError, match=message):
        model.adapt(sx, labels)
    with pytest.raises(ValueError, match=message):
        model.predict_task(sx, labels, qx)
    assert model.predict_task(sx, np.array([0.0, 0.0, 1.0, 1.0]), qx).shape == (2, 2)


def test_numpy_scalar_arguments_and_bad_ones():
    assert fewshot.PrototypicalNetwork(_identity_encoder(), temperature=np.float32(0.5)).temperature == 0.5
    assert type(fewshot.SiameseNetwork(_identity_encoder(), margin=np.float32(2.0)).margin) is float
    with pytest.raises(ValueError, match="Expected a positive float. Received: temperature=0"):
        fewshot.PrototypicalNetwork(_identity_encoder(), temperature=0)
    with pytest.raises(ValueError, match="Expected a positive float. Received: margin=True"):
        fewshot.SiameseNetwork(_identity_encoder(), margin=True)
    with pytest.raises(ValueError, match="Expected a positive integer. Received: batch_size=2.5"):
        fewshot.PrototypicalNetwork(_identity_encoder()).predict_task(*_task(), batch_size=2.5)


def test_support_distance_logits_refuses_an_unknown_mode():
    from fewshot.algorithms.metric_heads import SupportDistanceLogits

    with pytest.raises(ValueError, match=r"Expected one of \['prototype', 'nearest'\]. Received: mode='bogus'"):
        SupportDistanceLogits(np.zeros((2, 3)), mode="bogus")
    with pytest.raises(ValueError, match="`labels` is required with mode='nearest'"):
        SupportDistanceLogits(np.zeros((2, 3)), mode="nearest")
