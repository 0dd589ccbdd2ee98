"""Setting a hyperparameter after the first call takes effect (no stale traced graph)."""

import keras
import numpy as np

import fewshot
from fewshot.algorithms.fine_tuner import FineTuner


def _maml(**kwargs):
    keras.utils.set_random_seed(0)
    learner = fewshot.MAML(fewshot.models.mlp(hidden=(16,)), **kwargs)
    learner.compile(optimizer="sgd", loss="mse")
    return learner


def _task():
    episodes = fewshot.episodes.Sinusoid().sample(1, seed=3)
    return {k: np.asarray(v)[0] for k, v in episodes.items()}


def test_maml_adapt_uses_an_inner_lr_set_after_the_first_call():
    task = _task()
    learner = _maml(inner_lr=0.01)
    before = learner.predict_task(task["support_x"], task["support_y"], task["query_x"])
    learner.inner_lr = 0.3
    after = learner.predict_task(task["support_x"], task["support_y"], task["query_x"])
    fresh = _maml(inner_lr=0.3)
    expected = fresh.predict_task(task["support_x"], task["support_y"], task["query_x"])
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-6)


def test_maml_evaluate_and_fit_use_settings_set_after_the_first_call():
    stream = fewshot.episodes.Sinusoid().stream(4, 2, seed=5)
    learner = _maml(inner_lr=0.01)
    learner.evaluate(stream, verbose=0)
    learner.fit(stream, epochs=1, verbose=0)
    learner.set_weights(_maml(inner_lr=0.01).get_weights())
    learner.inner_steps = 3
    learner.support_shrinkage = 2.0
    fresh = _maml(inner_lr=0.01, inner_steps=3, support_shrinkage=2.0)
    assert learner.evaluate(stream, verbose=0) == fresh.evaluate(stream, verbose=0)
    learner.fit(stream, epochs=1, verbose=0)
    fresh.fit(stream, epochs=1, verbose=0)
    for a, b in zip(learner.get_weights(), fresh.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_fine_tuner_uses_a_learning_rate_set_after_the_first_call():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 6)).astype("float32")
    y = np.array([0, 1] * 6)

    def tuner(**kwargs):
        keras.utils.set_random_seed(1)
        return FineTuner(fewshot.models.fingerprint_encoder(6, hidden=(16,), embedding=8), **kwargs)

    learner = tuner(finetune_steps=20, learning_rate=1e-4)
    before = learner.predict_task(x, y, x)
    learner.learning_rate = 1e-2
    after = learner.predict_task(x, y, x)
    expected = tuner(finetune_steps=20, learning_rate=1e-2).predict_task(x, y, x)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-5)


def test_protonet_evaluate_uses_a_temperature_set_after_the_first_call():
    rng = np.random.default_rng(0)
    episodes = {
        "support_x": rng.normal(size=(2, 4, 3)).astype("float32"),
        "support_y": np.array([[0, 0, 1, 1]] * 2),
        "query_x": rng.normal(size=(2, 6, 3)).astype("float32"),
        "query_y": np.array([[0, 1, 0, 1, 0, 1]] * 2),
    }
    keras.utils.set_random_seed(2)
    learner = fewshot.PrototypicalNetwork(fewshot.models.mlp(input_shape=(3,), hidden=(8,), outputs=4))
    learner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cold = learner.evaluate(episodes, verbose=0)
    learner.temperature = 100.0
    hot = learner.evaluate(episodes, verbose=0)
    # At a temperature of 100 the logits are nearly equal: the loss is nearly log 2.
    assert abs(hot - np.log(2)) < 0.01
    assert abs(cold - np.log(2)) > 0.02


def test_task_retrieval_evaluate_uses_a_similarity_set_after_the_first_call():
    keras.utils.set_random_seed(0)
    backbone = fewshot.models.mlp(input_shape=(1,), hidden=(8,), outputs=1)
    learner = fewshot.TaskRetrieval(backbone, memory_size=4, similarity="support_loss", inner_lr=0.05)
    learner.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    known = fewshot.episodes.Sinusoid().sample(4, seed=1)
    for t in range(4):
        weights = [v.numpy() + rng.normal(size=v.shape).astype("float32") for v in backbone.trainable_variables]
        learner.remember(known["support_x"][t], known["support_y"][t], weights=weights)
    episodes = fewshot.episodes.Sinusoid().sample(2, seed=0)
    by_loss = learner.evaluate(episodes, verbose=0)
    learner.similarity = "embedding"
    by_embedding = learner.evaluate(episodes, verbose=0)
    fresh = fewshot.TaskRetrieval(backbone, memory_size=4, similarity="embedding", inner_lr=0.05)
    fresh.compile(optimizer="sgd", loss="mse")
    fresh.set_weights(learner.get_weights())
    assert abs(by_loss - by_embedding) > 1e-3
    np.testing.assert_allclose(by_embedding, fresh.evaluate(episodes, verbose=0), rtol=1e-6)
