import keras
import numpy as np
import pytest

import fewshot
from fewshot.algorithms.fine_tuner import FineTuner, pretrain_multitask


def _tuner(**kwargs):
    encoder = fewshot.models.fingerprint_encoder(6, hidden=(16,), embedding=8)
    tuner = FineTuner(encoder, **kwargs)
    tuner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return tuner


def _data(n=40):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    return x, y


def test_zero_steps_is_a_prototype_classifier():
    tuner = _tuner(finetune_steps=0)
    x, y = _data()
    classifier = tuner.adapt(x[:10], y[:10])
    logits = classifier.predict(x, verbose=0)
    z = tuner.encoder.predict(x, verbose=0)
    zs = tuner.encoder.predict(x[:10], verbose=0)
    protos = np.stack([zs[y[:10] == c].mean(0) for c in (0, 1)])
    distances = ((z[:, None, :] - protos[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(logits.argmax(1), distances.argmin(1))
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], distances[:, 0] - distances[:, 1], rtol=1e-3, atol=1e-3)


def test_fine_tuning_lowers_the_support_loss_and_keeps_the_meta_weights():
    tuner = _tuner(finetune_steps=30, learning_rate=1e-2)
    x, y = _data()
    before = [w.copy() for w in tuner.get_weights()]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    start = float(loss(y[:12], tuner.adapt(x[:12], y[:12], steps=0).predict(x[:12], verbose=0)))
    tuned = float(loss(y[:12], tuner.adapt(x[:12], y[:12]).predict(x[:12], verbose=0)))
    assert tuned < start
    for a, b in zip(before, tuner.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_prior_head_is_the_mean_task_head_after_pretraining():
    tuner = _tuner(head_init="prior", finetune_steps=0)
    x, _ = _data(80)
    labels = np.stack([x[:, 0] > 0, x[:, 0] > 0.2, x[:, 1] > 0], 1).astype("float32")
    labels[::7, 1] = np.nan
    history = pretrain_multitask(tuner, x, labels, epochs=3, batch_size=16)
    assert np.isfinite(history.history["loss"]).all()
    assert np.abs(tuner.prior_head.get_weights()[0]).sum() > 0
    classifier = tuner.adapt(x[:4], [0, 0, 1, 1])
    margin = classifier.predict(x, verbose=0) @ np.array([-1.0, 1.0])
    z = tuner.encoder.predict(x, verbose=0)
    kernel, bias = tuner.prior_head.get_weights()
    np.testing.assert_allclose(margin, (z @ kernel + bias).ravel(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="must be binary"):
        tuner.adapt(x[:6], [0, 0, 1, 1, 2, 2])


def test_config_round_trip_and_save(tmp_path):
    tuner = _tuner(finetune_steps=4, learning_rate=3e-3, head_init="prior")
    tuner.prior_head.set_weights([np.ones((8, 1), "float32"), np.ones(1, "float32")])
    config = tuner.get_config()
    assert (config["finetune_steps"], config["learning_rate"], config["head_init"]) == (4, 3e-3, "prior")
    clone = FineTuner.from_config(config)
    assert clone.finetune_steps == 4 and clone.head_init == "prior"
    tuner.save(tmp_path / "t.keras")
    loaded = keras.saving.load_model(tmp_path / "t.keras")
    np.testing.assert_array_equal(loaded.prior_head.get_weights()[0], 1.0)
    x, y = _data()
    np.testing.assert_allclose(
        loaded.adapt(x[:6], y[:6]).predict(x, verbose=0),
        tuner.adapt(x[:6], y[:6]).predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_bad_arguments_name_what_was_received():
    with pytest.raises(ValueError, match="Invalid value received for argument `finetune_steps`. Expected an integer >= 0. Received: finetune_steps=-1"):
        _tuner(finetune_steps=-1)
    with pytest.raises(ValueError, match="Received: learning_rate=0"):
        _tuner(learning_rate=0)
    with pytest.raises(ValueError, match="Received: head_init='mean'"):
        _tuner(head_init="mean")


@pytest.mark.parametrize("head_init", ["prototypes", "prior"])
def test_predict_task_equals_adapt_then_predict(head_init):
    tuner = _tuner(finetune_steps=5, learning_rate=1e-2, head_init=head_init)
    tuner.prior_head.set_weights([np.full((8, 1), 0.3, "float32"), np.ones(1, "float32")])
    x, y = _data()
    expected = tuner.adapt(x[:10], y[:10]).predict(x, verbose=0)
    got = tuner.predict_task(x[:10], y[:10], x, batch_size=7)  # slices of 7, 7, ..., 5
    assert got.shape == (40, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        tuner.predict_task(x[:10], y[:10], x[:3], steps=0),
        tuner.adapt(x[:10], y[:10], steps=0).predict(x[:3], verbose=0), rtol=1e-5, atol=1e-5)


def test_predict_task_with_a_gin_encoder_matches_adapt():
    pytest.importorskip("rdkit")
    from fewshot.datasets.graph_features import GraphFeaturizer

    featurizer = GraphFeaturizer(max_atoms=16, max_degree=4)
    smiles = ["CCO", "c1ccccc1O", "CC(=O)O", "CCN", "c1ccncc1", "CCCl", "OCC(O)CO", "C#N"]
    rows, valid, _ = featurizer(smiles)
    assert valid.all()
    encoder = fewshot.models.gin_encoder(max_atoms=16, max_degree=4, units=16, depth=2,
                                         embedding=8, edge_features=True)
    tuner = FineTuner(encoder, finetune_steps=3, learning_rate=1e-2)
    labels = np.array([0, 1, 0, 1])
    expected = tuner.adapt(rows[:4], labels).predict(rows, verbose=0)
    np.testing.assert_allclose(tuner.predict_task(rows[:4], labels, rows, batch_size=3),
                               expected, rtol=1e-5, atol=1e-5)
    # Without a batch size it scores in the GIN's slices (512), the fingerprint network in 2048.
    assert tuner.query_batch_size == 512 and _tuner().query_batch_size == 2048
    np.testing.assert_allclose(tuner.predict_task(rows[:4], labels, rows), expected,
                               rtol=1e-5, atol=1e-5)


class _Narrow(keras.layers.Identity):
    scoring_batch_size = 3


def test_predict_task_slices_by_the_backbone_s_scoring_batch_size(monkeypatch):
    from fewshot.algorithms import meta_learner

    seen = []
    real = meta_learner._in_slices

    def spy(fn, x, batch_size):
        seen.append(batch_size)
        return real(fn, x, batch_size)

    monkeypatch.setattr(meta_learner, "_in_slices", spy)
    encoder = keras.Sequential([keras.Input((6,)), _Narrow(name="narrow"), keras.layers.Dense(8)])
    x, y = _data(10)
    for learner in (FineTuner(encoder, finetune_steps=1), fewshot.PrototypicalNetwork(encoder)):
        assert learner.query_batch_size == 3
        assert learner.predict_task(x[:4], [0, 0, 1, 1], x).shape == (10, 2)
        learner.predict_task(x[:4], [0, 0, 1, 1], x, batch_size=5)
    assert seen == [3, 5, 3, 5]


def test_predict_task_bad_query_names_what_was_received():
    tuner = _tuner()
    x, y = _data()
    with pytest.raises(ValueError, match=r"argument `query_x`.*Received: query_x.shape=\(40, 5\)"):
        tuner.predict_task(x[:10], y[:10], x[:, :5])
    with pytest.raises(ValueError, match=r"no task axis. Received: query_x.shape=\(\)"):
        tuner.predict_task(x[:10], y[:10], 1.0)
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        tuner.predict_task(x[:10], y[:10], x, batch_size=0)


def test_dropout_draws_a_new_mask_at_every_fine_tuning_step():
    from fewshot.algorithms.inner_loop import advance_seeds, functional_forward
    from fewshot.algorithms.meta_learner import _seed_positions

    encoder = fewshot.models.fingerprint_encoder(6, hidden=(64,), embedding=8, dropout=0.5)
    positions = _seed_positions(encoder)
    assert len(positions) == 1  # the one Dropout layer's seed state
    params = [v.value for v in encoder.trainable_variables]
    fixed = [v.value for v in encoder.non_trainable_variables]
    x = np.ones((3, 6), "float32")

    def embed(step):
        return functional_forward(encoder, params, advance_seeds(fixed, positions, step), x, True).numpy()

    assert not np.allclose(embed(1), embed(2))  # a new mask per step ...
    np.testing.assert_array_equal(embed(1), embed(1))  # ... and the same for the same step
    assert not np.allclose(embed(1), encoder(x, training=False).numpy())  # dropout is on
    # Adapting stays deterministic: the same support gives the same model.
    tuner = FineTuner(encoder, finetune_steps=3, learning_rate=1e-2)
    tuner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data, labels = _data()
    first = tuner.predict_task(data[:10], labels[:10], data)
    np.testing.assert_array_equal(tuner.predict_task(data[:10], labels[:10], data), first)
    np.testing.assert_allclose(tuner.adapt(data[:10], labels[:10]).predict(data, verbose=0), first, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", ["MAML", "MetaSGD", "TaskRetrieval"])
def test_maml_family_refuses_random_layers_by_name(cls):
    encoder = fewshot.models.fingerprint_encoder(6, hidden=(16,), embedding=2, dropout=0.2)
    with pytest.raises(ValueError, match=r"cannot adapt a backbone with random layers \(dropout_1\)"):
        getattr(fewshot, cls)(encoder)
    getattr(fewshot, cls)(fewshot.models.fingerprint_encoder(6, hidden=(16,), embedding=2, dropout=0.0))


def test_float64_encoder():
    x, y = _data()
    x = x.astype("float64")
    tuner = FineTuner(fewshot.models.mlp(input_shape=(6,), hidden=(8,), outputs=4, dtype="float64"),
                      finetune_steps=2, learning_rate=1e-2)
    tuner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logits = tuner.predict_task(x[:6], y[:6], x)
    assert logits.shape == (40, 2) and logits.dtype == np.float64
    # The adapted Keras classifier is float64 throughout (input, head), so it agrees to float64 precision.
    adapted = tuner.adapt(x[:6], y[:6])
    assert adapted.inputs[0].dtype == "float64" and adapted.get_layer("finetuned_head").kernel.dtype == "float64"
    predicted = adapted.predict(x, verbose=0)
    assert predicted.dtype == np.float64
    np.testing.assert_allclose(predicted, logits, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([[0], [0], [0], [1], [1], [1]]), r"Expected a 1-D array .*Received: support_y.shape=\(6, 1\)"),
        (np.array([0, 0, 0, 1, 1, 1]) + 0.7, r"Expected integer class labels 0..N-1. Received: non-integer labels \[0.7, 1.7\]"),
    ],
)
def test_support_labels_must_be_one_integer_per_example(labels, message):
    x, _ = _data()
    tuner = _tuner(finetune_steps=1)
    with pytest.raises(ValueError, match=message):
        tuner.adapt(x[:6], labels)
    with pytest.raises(ValueError, match=message):
        tuner.predict_task(x[:6], labels, x)
    # Whole-number floats are labels.
    assert tuner.predict_task(x[:6], np.array([0.0, 0, 0, 1, 1, 1]), x).shape == (40, 2)


def test_predict_task_batch_size_must_be_a_positive_integer():
    x, y = _data()
    with pytest.raises(ValueError, match="Expected a positive integer. Received: batch_size=2.5"):
        _tuner().predict_task(x[:6], y[:6], x, batch_size=2.5)
    assert _tuner().predict_task(x[:6], y[:6], x, batch_size=np.int64(7)).shape == (40, 2)


def _bn_tuner(**kwargs):
    # Moving statistics far from the support's (as if pretrained on other data).
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([
        keras.Input((6,)), keras.layers.Dense(16, name="d1"),
        fewshot.models.BatchNormalization(name="bn"), keras.layers.ReLU(), keras.layers.Dense(8, name="out"),
    ])
    bn = encoder.get_layer("bn")
    bn.moving_mean.assign(np.full(16, 3.0, "float32"))
    bn.moving_variance.assign(np.full(16, 40.0, "float32"))
    tuner = FineTuner(encoder, **kwargs)
    tuner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return tuner


def _support_normalised(encoder, support, x):
    """`encoder` on `x` (NumPy, float64), its BatchNorm using the batch statistics of `support`."""
    w1, b1 = [v.numpy().astype("float64") for v in encoder.get_layer("d1").weights]
    bn = encoder.get_layer("bn")
    gamma, beta = bn.gamma.numpy().astype("float64"), bn.beta.numpy().astype("float64")
    w2, b2 = [v.numpy().astype("float64") for v in encoder.get_layer("out").weights]
    a_support = support @ w1 + b1
    mean, var = a_support.mean(0), a_support.var(0)
    a = x @ w1 + b1
    return np.maximum((a - mean) / np.sqrt(var + bn.epsilon) * gamma + beta, 0) @ w2 + b2, (mean, var)


def test_zero_steps_with_batch_norm_is_a_prototype_classifier_on_support_normalised_features():
    tuner = _bn_tuner(finetune_steps=0)
    x, y = _data()
    sx, sy = x[:10], y[:10]
    z, _ = _support_normalised(tuner.encoder, sx, x)
    protos = np.stack([z[:10][sy == c].mean(0) for c in (0, 1)])
    expected = 2 * z @ protos.T - (protos**2).sum(-1)
    np.testing.assert_allclose(tuner.adapt(sx, sy).predict(x, verbose=0), expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(tuner.predict_task(sx, sy, x), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("head_init", ["prototypes", "prior"])
def test_fine_tuned_batch_norm_carries_the_support_statistics(head_init):
    tuner = _bn_tuner(finetune_steps=5, learning_rate=1e-2, head_init=head_init)
    x, y = _data()
    sx, sy = x[:10], y[:10]
    adapted = tuner.adapt(sx, sy)
    encoder = adapted.layers[1]
    # The fine-tuned encoder's moving statistics are the support's batch
    # statistics under its fine-tuned weights: the normalisation fine-tuning saw.
    _, (mean, var) = _support_normalised(encoder, sx, x)
    assert not np.allclose(encoder.get_layer("d1").kernel.numpy(), tuner.encoder.get_layer("d1").kernel.numpy())
    np.testing.assert_allclose(encoder.get_layer("bn").moving_mean.numpy(), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(encoder.get_layer("bn").moving_variance.numpy(), var, rtol=1e-4, atol=1e-5)
    # adapt, predict_task and the export's graph twin give the same logits.
    expected = adapted.predict(x, verbose=0)
    np.testing.assert_allclose(tuner.predict_task(sx, sy, x, batch_size=7), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tuner.task_predictions(sx, sy, x).numpy(), expected, rtol=1e-5, atol=1e-5)
    # The learner's own (pretrained) statistics and momentum are left as they were.
    bn = tuner.encoder.get_layer("bn")
    np.testing.assert_array_equal(bn.moving_mean.numpy(), np.full(16, 3.0, "float32"))
    np.testing.assert_array_equal(bn.moving_variance.numpy(), np.full(16, 40.0, "float32"))
    assert bn.momentum == 0.99
