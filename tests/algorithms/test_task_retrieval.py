"""Task retrieval beats the meta-initialisation on tasks that recur with small changes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot


def _known_and_perturbed(num_known=6, seed=0):
    rng = np.random.default_rng(seed)
    amplitudes = rng.uniform(1.0, 5.0, num_known)
    phases = rng.uniform(0.0, np.pi, num_known)
    return amplitudes, phases


def _task(amplitude, phase, shots, rng):
    x = rng.uniform(-5, 5, (shots, 1)).astype("float32")
    return x, (amplitude * np.sin(x - phase)).astype("float32")


def test_retrieval_beats_meta_initialisation_on_recurring_tasks():
    backbone = fewshot.models.mlp(input_shape=(1,), hidden=(40, 40), outputs=1)
    learner = fewshot.TaskRetrieval(backbone, memory_size=8, inner_lr=0.01, inner_steps=1)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    learner.fit(fewshot.episodes.Sinusoid().stream(meta_batch_size=10, batches_per_epoch=100), epochs=1, verbose=0)
    amplitudes, phases = _known_and_perturbed()
    rng = np.random.default_rng(1)
    # The known tasks: solved once with many points and steps (small training set per task).
    for a, p in zip(amplitudes, phases):
        sx, sy = _task(a, p, 50, rng)
        learner.remember(sx, sy, steps=200, inner_lr=0.02)
    assert learner.num_remembered == 6
    retrieved, meta_init, correct = [], [], 0
    for i, (a, p) in enumerate(zip(amplitudes, phases)):
        a, p = a * rng.uniform(0.95, 1.05), p + rng.uniform(-0.05, 0.05)
        sx, sy = _task(a, p, 5, rng)
        qx, qy = _task(a, p, 50, rng)
        adapted = learner.adapt(sx, sy, steps=1)
        correct += adapted.retrieved_index == i
        retrieved.append(np.mean((adapted.predict(qx, verbose=0) - qy) ** 2))
        plain = fewshot.MAML.adapt(learner, sx, sy, steps=1)
        meta_init.append(np.mean((plain.predict(qx, verbose=0) - qy) ** 2))
    assert correct >= 3
    assert np.mean(retrieved) < 0.5 * np.mean(meta_init)


def test_empty_memory_is_maml_and_memory_is_saved(tmp_path):
    backbone = fewshot.models.mlp(input_shape=(1,), hidden=(8,), outputs=1)
    learner = fewshot.TaskRetrieval(backbone, memory_size=2, similarity="embedding")
    learner.compile(optimizer="adam", loss="mse")
    batch = fewshot.episodes.Sinusoid().sample(num_tasks=3, seed=0)
    np.testing.assert_allclose(
        learner.query_predictions(batch).numpy(),
        fewshot.MAML.query_predictions(learner, batch).numpy(),
        atol=1e-6,
    )
    for i in range(3):  # the third overwrites slot 0
        slot = learner.remember(batch["support_x"][i], batch["support_y"][i], steps=5)
    assert slot == 0 and learner.num_remembered == 2
    path = tmp_path / "retrieval.keras"
    learner.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.memory_keys.numpy(), learner.memory_keys.numpy())
    index = learner._retrieve(batch["support_x"][2:], batch["support_y"][2:])
    assert int(index[0]) == 0


def test_padded_supports_are_refused_where_retrieval_would_count_them():
    backbone = fewshot.models.mlp(input_shape=(1,), hidden=(8,), outputs=1)
    learner = fewshot.TaskRetrieval(backbone, memory_size=2)
    learner.compile(optimizer="adam", loss="mse")
    batch = dict(fewshot.episodes.Sinusoid().sample(num_tasks=2, seed=0))
    batch["support_weight"] = tf.ones(tf.shape(batch["support_y"])[:2])
    with pytest.raises(ValueError, match="does not use `support_weight` when it retrieves"):
        learner.query_predictions(batch)


def test_empty_memory_adapt_uses_the_support_batch_statistics_like_maml():
    inputs = keras.Input((1,))
    hidden = fewshot.models.BatchNormalization()(keras.layers.Dense(8)(inputs))
    outputs = keras.layers.Dense(1)(keras.layers.ReLU()(hidden))
    learner = fewshot.TaskRetrieval(keras.Model(inputs, outputs), memory_size=2, inner_lr=0.01)
    learner.compile(optimizer="adam", loss="mse")
    assert learner.batch_norm == "transductive"
    rng = np.random.default_rng(0)
    sx, sy = _task(2.0, 0.5, 5, rng)
    qx = rng.uniform(-5, 5, (7, 1)).astype("float32")
    retrieved = learner.adapt(sx, sy, steps=1)
    plain = fewshot.MAML.adapt(learner, sx, sy, steps=1)
    assert retrieved.retrieved_index == -1
    np.testing.assert_allclose(retrieved.predict(qx, verbose=0), plain.predict(qx, verbose=0), atol=1e-5)
