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


def _bn_learner(**kwargs):
    # BatchNorm on inputs far from 0/1: the moving statistics (never updated
    # in the default transductive mode) normalise them badly.
    keras.utils.set_random_seed(0)
    backbone = keras.Sequential([
        keras.Input((4,)), keras.layers.Dense(16, name="d1"),
        fewshot.models.BatchNormalization(name="bn"), keras.layers.ReLU(),
        keras.layers.Dense(16, name="feat"), keras.layers.Dense(3, name="head"),
    ])
    learner = fewshot.TaskRetrieval(backbone, memory_size=8, inner_lr=0.1, first_order=True, **kwargs)
    learner.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return learner


def test_support_loss_retrieval_normalises_like_the_inner_loop():
    rng = np.random.default_rng(0)
    learner = _bn_learner()
    x = (rng.normal(size=(300, 4)) * 5 + 10).astype("float32")
    sampler = fewshot.episodes.EpisodeSampler(x, np.repeat(np.arange(30), 10), ways=3, shots=2, queries=2)
    episodes = sampler.sample(9, seed=3)
    for t in range(8):
        learner.remember(episodes["support_x"][t], episodes["support_y"][t], steps=5)
    sx, sy = tf.constant(episodes["support_x"][8]), tf.constant(episodes["support_y"][8])
    memory = [tf.convert_to_tensor(m) for m in learner.memory_weights]

    def losses(training):
        return [float(learner.per_task_loss(sy, learner._forward([m[i] for m in memory], sx, training)))
                for i in range(8)]

    transductive, inference = np.argmin(losses(True)), np.argmin(losses(False))
    assert transductive != inference  # the two modes rank the entries differently here
    assert int(learner._retrieve(sx[None], sy[None])[0]) == transductive
    assert learner.adapt(sx, sy, steps=0).retrieved_index == transductive


def _bn_task_key(learner, sx, sy, training):
    """`_bn_learner`'s task embedding by hand (NumPy, float64): BatchNorm with the
    support's batch statistics (training) or the moving ones (inference)."""
    backbone = learner.backbone
    w1, b1 = [v.numpy().astype("float64") for v in backbone.get_layer("d1").weights]
    bn = backbone.get_layer("bn")
    gamma, beta, moving_mean, moving_var = [
        v.numpy().astype("float64") for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)]
    wf, bf = [v.numpy().astype("float64") for v in backbone.get_layer("feat").weights]
    a = sx.astype("float64") @ w1 + b1
    mean, var = (a.mean(0), a.var(0)) if training else (moving_mean, moving_var)
    h = np.maximum((a - mean) / np.sqrt(var + bn.epsilon) * gamma + beta, 0) @ wf + bf
    y = np.eye(3)[sy]
    return ((h - h.mean(0)).T @ (y - y.mean(0)) / len(sx)).ravel()


@pytest.mark.parametrize("vectorize", [True, False])
def test_embedding_retrieval_normalises_like_the_inner_loop(vectorize):
    rng = np.random.default_rng(0)
    learner = _bn_learner(similarity="embedding", vectorize=vectorize)
    bn = learner.backbone.get_layer("bn")
    moving = [bn.moving_mean.numpy().copy(), bn.moving_variance.numpy().copy()]
    x = (rng.normal(size=(300, 4)) * 5 + 10).astype("float32")
    sampler = fewshot.episodes.EpisodeSampler(x, np.repeat(np.arange(30), 10), ways=3, shots=2, queries=2)
    episodes = {k: np.asarray(v) for k, v in sampler.sample(10, seed=3).items()}
    sxs, sys_ = episodes["support_x"], episodes["support_y"]
    for t in range(8):
        learner.remember(sxs[t], sys_[t], steps=0)

    def nearest(t, training):
        keys = np.stack([_bn_task_key(learner, sxs[i], sys_[i], training) for i in range(8)])
        return int(np.argmin(((keys - _bn_task_key(learner, sxs[t], sys_[t], training)) ** 2).sum(1)))

    transductive, inference = nearest(8, True), nearest(8, False)
    assert transductive != inference  # the two modes rank the entries differently here
    assert learner.adapt(sxs[8], sys_[8], steps=0).retrieved_index == transductive
    # The stored keys are the batch-statistics embeddings.
    np.testing.assert_allclose(
        learner.memory_keys.numpy()[:8],
        np.stack([_bn_task_key(learner, sxs[i], sys_[i], True) for i in range(8)]), atol=1e-5)
    # A batch of tasks: each normalised with its own support's statistics.
    batch = learner._retrieve(tf.constant(sxs[8:]), tf.constant(sys_[8:])).numpy().tolist()
    assert batch == [transductive, nearest(9, True)]
    # Retrieval never touches the moving statistics.
    np.testing.assert_array_equal(bn.moving_mean.numpy(), moving[0])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), moving[1])


@pytest.mark.parametrize("similarity", ["support_loss", "embedding"])
def test_float64_backbone(similarity):
    rng = np.random.default_rng(0)
    backbone = fewshot.models.mlp(input_shape=(4,), hidden=(8,), outputs=3, dtype="float64")
    learner = fewshot.TaskRetrieval(backbone, memory_size=3, similarity=similarity)
    learner.compile(loss="mse")
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    assert learner.remember(x, y) == 0
    assert learner.memory_keys.dtype == "float64"
    assert learner.adapt(x, y).retrieved_index == 0


def test_bad_steps_and_inner_lr_name_what_was_received():
    learner = fewshot.TaskRetrieval(fewshot.models.mlp(hidden=(8,)), memory_size=2)
    learner.compile(loss="mse")
    x, y = _task(1.0, 0.0, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="Expected an integer >= 0. Received: steps=2.5"):
        learner.remember(x, y, steps=2.5)
    with pytest.raises(ValueError, match="Expected a positive float. Received: inner_lr=-0.1"):
        learner.remember(x, y, inner_lr=-0.1)
    with pytest.raises(ValueError, match="Expected a positive float. Received: inner_lr=0"):
        learner.adapt(x, y, inner_lr=0)
    with pytest.raises(ValueError, match="Received: steps='1'"):
        learner.adapt(x, y, steps="1")
    assert learner.num_remembered == 0
    with pytest.raises(ValueError, match="Expected one of \\['embedding', 'support_loss'\\]. Received: similarity='cosine'"):
        learner.similarity = "cosine"


def test_freezing_a_layer_after_construction_is_refused_not_misaligned():
    backbone = fewshot.models.mlp(hidden=(8,))
    learner = fewshot.TaskRetrieval(backbone, memory_size=2)
    learner.compile(loss="mse")
    x, y = _task(1.0, 0.0, 5, np.random.default_rng(0))
    learner.remember(x, y)
    backbone.get_layer("hidden_1").trainable = False
    with pytest.raises(ValueError, match="TaskRetrieval holds remembered weights .*a layer was frozen or unfrozen"):
        learner.adapt(x, y)
