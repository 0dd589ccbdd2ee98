"""One contract, every algorithm: the same compile/fit/evaluate/adapt/save behaviour."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot

WAYS, SHOTS, QUERIES = 3, 2, 3


def _data():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 8)) * 2.0
    x = centers[:, None, :] + rng.normal(size=(20, 12, 8)) * 0.6
    return x.reshape(-1, 8).astype("float32"), np.repeat(np.arange(20), 12)


def _backbone(outputs=WAYS):
    return fewshot.models.mlp(input_shape=(8,), hidden=(16,), outputs=outputs)


# name -> (constructor, the keyword whose bad value is pinned, its bad value, the message)
ALGORITHMS = {
    "maml": (lambda: fewshot.MAML(_backbone(), inner_lr=0.1), "inner_lr", -0.1,
             "Invalid value received for argument `inner_lr`. Expected a positive float. Received: inner_lr=-0.1"),
    "fomaml": (lambda: fewshot.MAML(_backbone(), inner_lr=0.1, first_order=True), "inner_steps", -1,
               "Invalid value received for argument `inner_steps`. Expected an integer >= 0. Received: inner_steps=-1"),
    "metasgd": (lambda: fewshot.MetaSGD(_backbone(), inner_lr=0.1), "inner_lr", 0,
                "Invalid value received for argument `inner_lr`. Expected a positive float. Received: inner_lr=0"),
    "reptile": (lambda: fewshot.Reptile(_backbone(), inner_lr=0.1, inner_steps=3), "batch_norm", "sometimes",
                "Invalid value received for argument `batch_norm`. Expected one of ['transductive', 'running']. Received: batch_norm='sometimes'"),
    "anil": (lambda: fewshot.ANIL(_backbone(), inner_lr=0.1), "adapt_layers", ["nope"],
             "Invalid value received for argument `adapt_layers`: the backbone has no layer named 'nope'."),
    "protonet": (lambda: fewshot.PrototypicalNetwork(_backbone(8)), "distance", "manhattan",
                 "Invalid value received for argument `distance`. Expected one of ['euclidean', 'cosine']. Received: distance='manhattan'"),
    "siamese": (lambda: fewshot.SiameseNetwork(_backbone(8)), "margin", -1.0,
                "Invalid value received for argument `margin`. Expected a positive float. Received: margin=-1.0"),
    "task_retrieval": (lambda: fewshot.TaskRetrieval(_backbone(), memory_size=4, inner_lr=0.1), "memory_size", 0,
                       "Invalid value received for argument `memory_size`. Expected a positive integer. Received: memory_size=0"),
}

OPTIMIZERS = {"reptile": lambda: keras.optimizers.SGD(learning_rate=0.5)}


def _compiled(name):
    learner = ALGORITHMS[name][0]()
    optimizer = OPTIMIZERS.get(name, lambda: keras.optimizers.Adam(1e-2))()
    learner.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return learner


def _sampler():
    x, y = _data()
    return fewshot.episodes.EpisodeSampler(x, y, ways=WAYS, shots=SHOTS, queries=QUERIES)


def _eval_batches(sampler):
    return tf.data.Dataset.from_tensors(sampler.sample(8, seed=123))


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_contract(name, tmp_path):
    learner = _compiled(name)
    sampler = _sampler()
    before = learner.evaluate(_eval_batches(sampler), verbose=0, return_dict=True)
    learner.fit(sampler.stream(meta_batch_size=4, batches_per_epoch=10, seed=1), epochs=3, verbose=0)
    after = learner.evaluate(_eval_batches(sampler), verbose=0, return_dict=True)
    # The loss falls on a synthetic episode stream and accuracy beats chance.
    assert after["loss"] < before["loss"]
    assert after["accuracy"] > 1.0 / WAYS + 0.1

    # get_config round-trips.
    config = learner.get_config()
    clone = type(learner).from_config(config)
    assert clone.get_config() == config

    # .keras save/load gives the same predictions.
    batch = sampler.sample(2, seed=7)
    path = tmp_path / f"{name}.keras"
    learner.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(learner)
    np.testing.assert_allclose(
        learner.predict_step(batch).numpy(), loaded.predict_step(batch).numpy(), atol=1e-5
    )

    # adapt gives a plain Keras model and leaves the meta-weights untouched.
    weights = [w.copy() for w in learner.get_weights()]
    adapted = learner.adapt(batch["support_x"][0], batch["support_y"][0], steps=2)
    predictions = adapted.predict(batch["query_x"][0].numpy(), verbose=0)
    assert predictions.shape == (WAYS * QUERIES, WAYS)
    # predict_task gives the same numbers, whatever the slice size.
    np.testing.assert_allclose(
        learner.predict_task(batch["support_x"][0], batch["support_y"][0],
                             batch["query_x"][0].numpy(), steps=2, batch_size=4),
        predictions, atol=1e-5)
    for old, new in zip(weights, learner.get_weights()):
        np.testing.assert_array_equal(old, new)
    # Training the adapted model does not reach back into the learner.
    adapted.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    adapted.fit(batch["support_x"][0], batch["support_y"][0], epochs=1, verbose=0)
    for old, new in zip(weights, learner.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_constructor_error_message(name):
    constructor, argument, bad, message = ALGORITHMS[name]
    backbone = _backbone(8 if name in ("protonet", "siamese") else WAYS)
    cls = type(constructor())
    with pytest.raises(ValueError) as info:
        cls(backbone, **{argument: bad})
    assert message in str(info.value)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_query_predictions_in_graph_mode(name):
    """`query_predictions` traces in a tf.function with unknown task/class counts (export)."""
    learner = _compiled(name)
    spec = {
        "support_x": tf.TensorSpec([None, None, 8], tf.float32),
        "support_y": tf.TensorSpec([None, None], tf.int32),
        "query_x": tf.TensorSpec([None, None, 8], tf.float32),
        "query_y": tf.TensorSpec([None, None], tf.int32),
    }
    fn = tf.function(lambda e: learner.query_predictions(e, training=False), input_signature=[spec])
    batch = _sampler().sample(2, seed=3)
    out = fn(batch)
    assert out.shape == (2, WAYS * QUERIES, WAYS)
    np.testing.assert_allclose(out.numpy(), learner.query_predictions(batch).numpy(), atol=1e-5)


def test_every_algorithm_has_example_and_reference():
    for cls in (fewshot.MAML, fewshot.MetaSGD, fewshot.Reptile, fewshot.ANIL,
                fewshot.PrototypicalNetwork, fewshot.SiameseNetwork, fewshot.TaskRetrieval):
        assert "Example:" in cls.__doc__ and "Reference:" in cls.__doc__, cls.__name__
