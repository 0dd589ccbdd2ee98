"""The vectorised meta-batch computes the same meta-gradient as the task loop."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot


def conv4(input_shape=(12, 12, 1), ways=3, filters=4, blocks=2, dtype="float32"):
    """`fewshot.models.conv4` when present, else a small stand-in of the same shape.

    Conv 3x3 -> BatchNorm -> ReLU -> MaxPool 2x2 blocks, then a linear head.
    """
    if hasattr(fewshot.models, "conv4") and dtype == "float32":
        return fewshot.models.conv4(
            input_shape=input_shape, outputs=ways, filters=filters, blocks=blocks
        )
    layers = [keras.Input(input_shape, dtype=dtype)]
    for i in range(blocks):
        layers += [
            keras.layers.Conv2D(filters, 3, padding="same", dtype=dtype, name=f"conv_{i + 1}"),
            fewshot.models.BatchNormalization(dtype=dtype, name=f"bn_{i + 1}"),
            keras.layers.ReLU(dtype=dtype),
            keras.layers.MaxPooling2D(2, dtype=dtype),
        ]
    layers += [keras.layers.Flatten(dtype=dtype), keras.layers.Dense(ways, dtype=dtype, name="head")]
    return keras.Sequential(layers, name="conv4")


def _mlp_case(dtype):
    rng = np.random.default_rng(1)
    backbone = fewshot.models.mlp(hidden=(16, 16), dtype=dtype)
    x = rng.uniform(-5, 5, size=(4, 10, 1))
    y = np.sin(x) * rng.uniform(0.5, 2, size=(4, 1, 1))
    qx = rng.uniform(-5, 5, size=(4, 10, 1))
    qy = np.sin(qx) * rng.uniform(0.5, 2, size=(4, 1, 1))
    return backbone, "mse", (x, y, qx, qy)


def _conv_case(dtype):
    rng = np.random.default_rng(2)
    backbone = conv4(dtype=dtype)
    x = rng.normal(size=(4, 6, 12, 12, 1))
    qx = rng.normal(size=(4, 6, 12, 12, 1))
    y = np.tile(np.arange(3), (4, 2))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return backbone, loss, (x, y, qx, y.copy())


CASES = {"mlp": _mlp_case, "conv4": _conv_case}


def _episodes(arrays, dtype):
    sx, sy, qx, qy = arrays
    cast = lambda a: tf.constant(a, dtype=dtype if np.issubdtype(a.dtype, np.floating) else None)
    return {"support_x": cast(sx), "support_y": cast(sy), "query_x": cast(qx), "query_y": cast(qy)}


def _meta_gradient(learner, episodes):
    @tf.function(autograph=False)
    def grad(episodes):
        with tf.GradientTape() as tape:
            loss, _ = learner.meta_loss(episodes, training=True)
        return tape.gradient(loss, learner.trainable_variables)

    return [g.numpy() for g in grad(episodes)]


@pytest.mark.parametrize("first_order", [False, True], ids=["second_order", "first_order"])
@pytest.mark.parametrize("backbone", sorted(CASES))
def test_vectorized_gradient_equals_task_loop(backbone, first_order):
    dtype = "float32"
    model, loss, arrays = CASES[backbone](dtype)
    episodes = _episodes(arrays, dtype)
    grads = {}
    for vectorize in (True, False):
        learner = fewshot.MAML(
            model, inner_lr=0.1, inner_steps=2, first_order=first_order, vectorize=vectorize
        )
        learner.compile(optimizer="sgd", loss=loss)
        grads[vectorize] = _meta_gradient(learner, episodes)
    for vectorized, looped in zip(grads[True], grads[False]):
        scale = max(1.0, float(np.abs(looped).max()))
        np.testing.assert_allclose(vectorized, looped, rtol=0, atol=1e-5 * scale)
    # The gradient is not trivially zero.
    assert max(float(np.abs(g).max()) for g in grads[False]) > 1e-3


def test_vectorized_map_under_xla_compiles_once_and_agrees():
    """`jit_compile=True` around `tf.vectorized_map`: one trace per batch shape."""
    family = fewshot.episodes.Sinusoid(support_shots=5, query_shots=5)
    learner = fewshot.MAML(fewshot.models.mlp(hidden=(8,)), vectorize=True)
    learner.compile(optimizer="adam", loss="mse")

    def meta_gradient(batch):
        with tf.GradientTape() as tape:
            loss, _ = learner.meta_loss(batch, training=True)
        return [loss] + tape.gradient(loss, learner.trainable_variables)

    xla = tf.function(meta_gradient, jit_compile=True, autograph=False)
    plain = tf.function(meta_gradient, autograph=False)
    for seed in range(4):
        batch = {k: tf.constant(v) for k, v in family.sample(4, seed=seed).items()}
        for a, b in zip(xla(batch), plain(batch)):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
    assert xla.experimental_get_tracing_count() == 1
    # Keras' compiled step with XLA trains too.
    learner.compile(optimizer="adam", loss="mse", jit_compile=True)
    losses = [learner.train_on_batch(family.sample(4, seed=s)) for s in range(3)]
    assert np.all(np.isfinite(losses))


@pytest.mark.parametrize("vectorize", [True, False])
@pytest.mark.parametrize("backbone", sorted(CASES))
def test_recompute_inner_gives_the_same_second_order_gradient(backbone, vectorize):
    model, loss, arrays = CASES[backbone]("float32")
    episodes = _episodes(arrays, "float32")
    grads = {}
    for recompute in (False, True):
        learner = fewshot.MAML(
            model, inner_lr=0.1, inner_steps=3, vectorize=vectorize, recompute_inner=recompute
        )
        learner.compile(optimizer="sgd", loss=loss)
        grads[recompute] = _meta_gradient(learner, episodes)
    for checkpointed, stored in zip(grads[True], grads[False]):
        scale = max(1.0, float(np.abs(stored).max()))
        np.testing.assert_allclose(checkpointed, stored, rtol=0, atol=1e-5 * scale)


def test_recompute_inner_learns_meta_sgd_rates():
    """The learned per-weight rates get the same gradient with checkpointing."""
    model, loss, arrays = CASES["mlp"]("float32")
    episodes = _episodes(arrays, "float32")
    grads = {}
    for recompute in (False, True):
        learner = fewshot.MetaSGD(model, inner_lr=0.05, inner_steps=2, recompute_inner=recompute)
        learner.compile(optimizer="sgd", loss=loss)
        grads[recompute] = _meta_gradient(learner, episodes)
    assert len(grads[True]) == 2 * len(model.trainable_variables)
    for checkpointed, stored in zip(grads[True], grads[False]):
        np.testing.assert_allclose(checkpointed, stored, rtol=1e-4, atol=1e-5)


def test_recompute_inner_is_validated_and_serialised():
    backbone = fewshot.models.mlp(hidden=(4,))
    with pytest.raises(ValueError, match="Invalid value received for argument `recompute_inner`"):
        fewshot.MAML(backbone, recompute_inner="yes")
    learner = fewshot.MAML(backbone, recompute_inner=True)
    config = learner.get_config()
    assert config["recompute_inner"] is True
    restored = fewshot.MAML.from_config(config)
    assert restored.recompute_inner is True


def _one_update(learner, loss, episodes):
    learner.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    logs = learner.train_on_batch(episodes, return_dict=True)
    return logs["loss"], [v.numpy() for v in learner.trainable_variables]


@pytest.mark.parametrize("vectorize", [True, False])
@pytest.mark.parametrize("backbone", sorted(CASES))
def test_tasks_per_chunk_gives_the_same_meta_update(backbone, vectorize):
    """Accumulating the meta-gradient chunk by chunk equals the whole batch.

    4 tasks: chunks of 1 and 2 split them evenly; chunks of 3 leave one task
    over, which the step takes on its own.
    """
    results = {}
    for chunk in (None, 1, 2, 3):
        keras.utils.set_random_seed(0)
        model, loss, arrays = CASES[backbone]("float32")
        learner = fewshot.MAML(
            model, inner_lr=0.1, inner_steps=2, vectorize=vectorize, tasks_per_chunk=chunk
        )
        results[chunk] = _one_update(learner, loss, _episodes(arrays, "float32"))
    keras.utils.set_random_seed(0)
    initial = [v.numpy() for v in CASES[backbone]("float32")[0].trainable_variables]
    whole_loss, whole = results[None]
    assert max(float(np.abs(w - i).max()) for w, i in zip(whole, initial)) > 1e-4
    for chunk in (1, 2, 3):
        chunk_loss, weights = results[chunk]
        np.testing.assert_allclose(chunk_loss, whole_loss, rtol=1e-5)
        for a, b in zip(weights, whole):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_tasks_per_chunk_with_a_float64_backbone():
    """The float32 accumulators take a float64 backbone's loss and predictions."""
    results = {}
    for chunk in (None, 2):
        keras.utils.set_random_seed(0)
        model, loss, arrays = CASES["mlp"]("float64")
        learner = fewshot.MAML(model, inner_lr=0.1, inner_steps=2, tasks_per_chunk=chunk)
        results[chunk] = _one_update(learner, loss, _episodes(arrays, "float64"))
    np.testing.assert_allclose(results[2][0], results[None][0], rtol=1e-5)
    for a, b in zip(results[2][1], results[None][1]):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


def test_tasks_per_chunk_under_xla_matches_plain():
    family = fewshot.episodes.Sinusoid(support_shots=5, query_shots=5)
    batch = family.sample(4, seed=0)
    weights = {}
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        learner = fewshot.MAML(fewshot.models.mlp(hidden=(8,)), inner_steps=2, tasks_per_chunk=2)
        learner.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=jit)
        learner.train_on_batch(batch)
        weights[jit] = [v.numpy() for v in learner.trainable_variables]
    for a, b in zip(weights[True], weights[False]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_tasks_per_chunk_is_validated_and_serialised():
    backbone = fewshot.models.mlp(hidden=(4,))
    with pytest.raises(ValueError, match="Received: tasks_per_chunk=0"):
        fewshot.MAML(backbone, tasks_per_chunk=0)
    learner = fewshot.MetaSGD(backbone, tasks_per_chunk=3)
    assert fewshot.MetaSGD.from_config(learner.get_config()).tasks_per_chunk == 3


def test_recompute_inner_with_a_learned_support_shrinkage():
    """A variable read inside the checkpointed step gets the same gradient."""
    model, loss, arrays = CASES["mlp"]("float32")
    episodes = _episodes(arrays, "float32")
    grads = {}
    for recompute in (False, True):
        learner = fewshot.MAML(
            model, inner_lr=0.05, inner_steps=2, support_shrinkage=2.0,
            learn_support_shrinkage=True, recompute_inner=recompute,
        )
        learner.compile(optimizer="sgd", loss=loss)
        grads[recompute] = _meta_gradient(learner, episodes)
    shrinkage = [v.name for v in learner.trainable_variables].index("log_support_shrinkage")
    assert len(grads[True]) == len(model.trainable_variables) + 1
    assert abs(float(grads[True][shrinkage])) > 1e-7  # the shrinkage's own gradient
    for checkpointed, stored in zip(grads[True], grads[False]):
        np.testing.assert_allclose(checkpointed, stored, rtol=1e-4, atol=1e-6)
    assert np.isfinite(learner.train_on_batch(episodes))  # Keras' compiled step too


def test_a_task_loop_needs_a_static_batch_or_chunks():
    """`vectorize=False` unrolls the tasks of a batch: a run-time batch size needs chunks."""
    episodes = fewshot.episodes.Sinusoid().sample(5, seed=0)
    batches = tf.data.Dataset.from_tensor_slices(episodes).batch(4)
    learner = fewshot.MAML(fewshot.models.mlp(hidden=(8,)), inner_lr=0.1, vectorize=False)
    learner.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"drop_remainder=True, or set `tasks_per_chunk`.*"
                                         r"Received: support_x.shape=\(None, 10, 1\)"):
        learner.fit(batches, epochs=1, verbose=0)
    chunked = fewshot.MAML(fewshot.models.mlp(hidden=(8,)), inner_lr=0.1, vectorize=False,
                           tasks_per_chunk=2)
    chunked.compile(optimizer="sgd", loss="mse")
    history = chunked.fit(batches, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
