"""MAML as a Keras model: compile/fit/evaluate, adapt, saving, resuming, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot
from fewshot.callbacks import NaNLossError


def _learner(outer_lr=1e-3, **kwargs):
    kwargs.setdefault("inner_lr", 0.01)
    learner = fewshot.MAML(fewshot.models.mlp(hidden=(40, 40)), **kwargs)
    learner.compile(optimizer=keras.optimizers.Adam(outer_lr), loss="mse")
    return learner


def _weights(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def test_loss_falls_and_evaluate_reports_adapted_loss():
    learner = _learner(outer_lr=3e-3)
    family = fewshot.episodes.Sinusoid()
    test = family.stream(25, 4, seed=123)
    before = learner.evaluate(test, verbose=0, return_dict=True)["loss"]
    learner.fit(family.stream(25, 100, seed=0), epochs=4, verbose=0)
    after = learner.evaluate(test, verbose=0, return_dict=True)["loss"]
    assert after < 0.6 * before
    # evaluate scores *adapted* predictions: they beat the meta-initialisation.
    batch = family.sample(50, seed=9)
    curve = learner.query_loss_curve(batch, steps=1).numpy()
    assert curve[1].mean() < curve[0].mean()


def test_train_on_batch_is_one_meta_update():
    learner = _learner()
    batch = fewshot.episodes.Sinusoid().sample(4, seed=0)
    before = _weights(learner)
    learner.train_on_batch(batch)
    assert learner.optimizer.iterations.numpy() == 1
    assert any(not np.allclose(a, b) for a, b in zip(before, _weights(learner)))


def test_adapt_returns_tuned_model_and_leaves_meta_weights():
    learner = _learner(inner_lr=0.05)
    task = fewshot.episodes.Sinusoid(query_shots=50).sample(1, seed=4)
    sx, sy, qx, qy = (task[k][0].numpy() for k in ("support_x", "support_y", "query_x", "query_y"))
    before = _weights(learner)
    adapted = learner.adapt(sx, sy, steps=5)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(learner)))
    assert isinstance(adapted, keras.Model) and adapted is not learner.backbone
    losses = adapted.adaptation_loss
    assert len(losses) == 6 and losses[-1] < losses[0]
    meta_mse = np.mean((learner.backbone.predict(qx, verbose=0) - qy) ** 2)
    adapted_mse = np.mean((adapted.predict(qx, verbose=0) - qy) ** 2)
    assert adapted_mse < meta_mse
    # The adapted model is ordinary Keras: evaluate works on it.
    assert np.isclose(adapted.evaluate(qx, qy, verbose=0), adapted_mse, rtol=1e-4)


def test_adapt_layers_only_changes_named_layers():
    learner = _learner(adapt_layers=["head"], inner_lr=0.1)
    task = fewshot.episodes.Sinusoid().sample(1, seed=1)
    adapted = learner.adapt(task["support_x"][0], task["support_y"][0], steps=3)
    for layer in ("hidden_1", "hidden_2"):
        for a, b in zip(adapted.get_layer(layer).get_weights(), learner.backbone.get_layer(layer).get_weights()):
            np.testing.assert_array_equal(a, b)
    head_a = adapted.get_layer("head").get_weights()[0]
    assert not np.allclose(head_a, learner.backbone.get_layer("head").get_weights()[0])


def test_config_round_trip():
    learner = _learner(inner_lr=0.02, inner_steps=3, first_order=True, adapt_layers=["head"])
    config = learner.get_config()
    clone = fewshot.MAML.from_config(config)
    for key in ("inner_lr", "inner_steps", "first_order", "adapt_layers", "vectorize"):
        assert getattr(clone, key) == getattr(learner, key) == config[key]


def test_keras_save_and_load(tmp_path):
    learner = _learner(inner_steps=2)
    learner.fit(fewshot.episodes.Sinusoid().stream(5, 3), epochs=1, verbose=0)
    path = tmp_path / "maml.keras"
    learner.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, fewshot.MAML) and loaded.inner_steps == 2
    batch = fewshot.episodes.Sinusoid().sample(3, seed=2)
    np.testing.assert_allclose(
        loaded.query_predictions(batch).numpy(), learner.query_predictions(batch).numpy(), atol=1e-6
    )
    # It comes back compiled and can keep training.
    loaded.fit(fewshot.episodes.Sinusoid().stream(5, 2), epochs=1, verbose=0)


def test_vectorized_and_loop_agree():
    learner = _learner(inner_steps=2)
    batch = fewshot.episodes.Sinusoid().sample(4, seed=0)
    vectorized = learner.query_predictions(batch, training=True).numpy()
    learner.vectorize = False
    looped = learner.query_predictions(batch, training=True).numpy()
    np.testing.assert_allclose(vectorized, looped, atol=1e-5)


def test_backup_and_restore_resumes_to_identical_weights(tmp_path):
    def train(callbacks, epochs=4):
        keras.utils.set_random_seed(1)
        learner = _learner()
        stream = fewshot.episodes.Sinusoid().stream(8, 5, seed=3)
        learner.fit(stream, epochs=epochs, callbacks=callbacks, verbose=0)
        return learner

    straight = _weights(train([]))

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("simulated kill")

    backup = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        train([keras.callbacks.BackupAndRestore(backup), Interrupt()])
    resumed = train([keras.callbacks.BackupAndRestore(backup)])
    assert resumed.optimizer.iterations.numpy() == 20
    for a, b in zip(straight, _weights(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_nan_loss_stops_training_with_a_clear_message():
    batch = {k: v.numpy() for k, v in fewshot.episodes.Sinusoid().sample(4, seed=0).items()}
    batch["query_y"][1, 2] = np.nan
    data = tf.data.Dataset.from_tensors(batch).repeat(5)
    with pytest.raises(NaNLossError, match="stopped at epoch 1, batch 1: the query loss is nan"):
        _learner().fit(data, epochs=1, verbose=0)


def test_diverging_inner_loop_stops_training():
    learner = _learner(inner_lr=1e6)
    with pytest.raises(NaNLossError, match=r"the query loss is (nan|inf)\. Usual causes: an inner"):
        learner.fit(fewshot.episodes.Sinusoid().stream(4, 50), epochs=1, verbose=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"inner_lr": -0.1}, "Invalid value received for argument `inner_lr`. Expected a positive float. Received: inner_lr=-0.1"),
        ({"inner_steps": -1}, "Received: inner_steps=-1"),
        ({"adapt_layers": ["nope"]}, "the backbone has no layer named 'nope'"),
    ],
)
def test_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        fewshot.MAML(fewshot.models.mlp(), **kwargs)


def test_unbuilt_backbone_is_refused():
    with pytest.raises(ValueError, match="it is not built"):
        fewshot.MAML(keras.Sequential([keras.layers.Dense(1)]))


def test_compile_needs_a_loss():
    with pytest.raises(ValueError, match="Received: loss=None"):
        fewshot.MAML(fewshot.models.mlp()).compile(optimizer="adam")


def test_fit_before_compile():
    with pytest.raises(RuntimeError, match="must be compiled"):
        fewshot.MAML(fewshot.models.mlp()).fit(fewshot.episodes.Sinusoid().stream(2, 1))


@pytest.mark.parametrize(
    "support_x, support_y, message",
    [
        (np.zeros((5, 1)), np.zeros((4, 1)), r"support_x.shape=\(5, 1\), support_y.shape=\(4, 1\)"),
        (np.zeros((5, 3)), np.zeros((5, 1)), r"examples have shape \(3,\) but the backbone takes \(1,\)"),
        (np.full((5, 1), np.nan), np.zeros((5, 1)), "argument `support_x`: 5 of 5 examples hold NaN"),
        (np.zeros((0, 1)), np.zeros((0, 1)), "the support set is empty"),
        ([["a"], ["b"]], [[1.0], [2.0]], "expected numbers"),
    ],
)
def test_adapt_rejects_bad_support(support_x, support_y, message):
    with pytest.raises(ValueError, match=message):
        _learner().adapt(support_x, support_y)


def test_fit_rejects_a_batch_with_y():
    learner = _learner()
    batch = fewshot.episodes.Sinusoid().sample(2, seed=0)
    with pytest.raises(ValueError, match="episode dicts as `x` with no `y`"):
        learner.fit(tf.data.Dataset.from_tensors((batch, batch["query_y"])), verbose=0)


def test_tensorboard_and_checkpoint_callbacks(tmp_path):
    learner = _learner()
    stream = fewshot.episodes.Sinusoid().stream(5, 4)
    learner.fit(
        stream,
        epochs=2,
        validation_data=fewshot.episodes.Sinusoid().stream(5, 2, seed=1),
        callbacks=[
            keras.callbacks.TensorBoard(str(tmp_path / "tb")),
            keras.callbacks.ModelCheckpoint(str(tmp_path / "best.keras"), monitor="val_loss", save_best_only=True),
        ],
        verbose=0,
    )
    assert list((tmp_path / "tb" / "train").glob("events.out.tfevents.*"))
    assert isinstance(keras.saving.load_model(tmp_path / "best.keras"), fewshot.MAML)


def test_adapted_model_carries_support_batch_statistics():
    """Transductive BN: the adapted model predicts as adaptation normalised."""
    backbone = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8), fewshot.models.BatchNormalization(), keras.layers.ReLU(), keras.layers.Dense(1)]
    )
    learner = fewshot.MAML(backbone, inner_lr=0.05, inner_steps=2)
    learner.compile(loss="mse")
    rng = np.random.default_rng(0)
    sx = (rng.normal(size=(10, 4)) * 3 + 5).astype("float32")
    sy = rng.normal(size=(10, 1)).astype("float32")
    adapted = learner.adapt(sx, sy)
    bn = adapted.layers[1]
    hidden = adapted.layers[0](sx).numpy()
    np.testing.assert_allclose(bn.moving_mean.numpy(), hidden.mean(0), rtol=1e-4, atol=1e-4)
    # Inference on the support set equals the transductive forward pass.
    np.testing.assert_allclose(adapted(sx, training=False), adapted(sx, training=True), rtol=1e-4, atol=1e-4)
    # The learner's own statistics are untouched.
    assert np.allclose(learner.backbone.layers[1].moving_mean.numpy(), 0.0)


def _ragged_tasks(sizes=(3, 5, 7), queries=4, seed=0):
    """Tasks with support sets of different sizes, as (sx, sy, qx, qy) float64 arrays."""
    rng = np.random.default_rng(seed)
    tasks = []
    for size in sizes:
        w = rng.normal(size=(2, 1))
        sx, qx = rng.normal(size=(size, 2)), rng.normal(size=(queries, 2))
        tasks.append((sx, np.tanh(sx @ w) * 2.0, qx, np.tanh(qx @ w) * 2.0))
    return tasks


def _padded_batch(tasks, width):
    """One batch padded to `width` with garbage rows, and `support_weight`."""
    rng = np.random.default_rng(1)
    sx = rng.normal(size=(len(tasks), width, 2)) * 5.0
    sy = rng.normal(size=(len(tasks), width, 1)) * 5.0
    weight = np.zeros((len(tasks), width))
    for i, (x, y, _, _) in enumerate(tasks):
        sx[i, : len(x)], sy[i, : len(y)], weight[i, : len(y)] = x, y, 1.0
    return {
        "support_x": tf.constant(sx), "support_y": tf.constant(sy),
        "query_x": tf.constant(np.stack([t[2] for t in tasks])),
        "query_y": tf.constant(np.stack([t[3] for t in tasks])),
        "support_weight": tf.constant(weight),
    }


def _tiny_float64_learner(first_order, loss, vectorize=True):
    keras.utils.set_random_seed(0)
    backbone = fewshot.models.mlp(
        input_shape=(2,), hidden=(3,), outputs=1, activation="tanh", dtype="float64"
    )
    learner = fewshot.MAML(
        backbone, inner_lr=0.3, inner_steps=2, first_order=first_order, vectorize=vectorize
    )
    learner.compile(optimizer="sgd", loss=loss)
    return learner


def _loss_and_gradient(learner, batch):
    with tf.GradientTape() as tape:
        loss, _ = learner.meta_loss(batch, training=True)
    return float(loss), [g.numpy() for g in tape.gradient(loss, learner.trainable_variables)]


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("loss", ["mse", keras.losses.MeanAbsoluteError()], ids=["fn", "Loss"])
def test_support_weight_masks_padding_exactly(first_order, loss):
    # Padded rows (garbage, weight 0) must change neither the meta-loss nor
    # its meta-gradient: both equal those of the unpadded tasks, one by one.
    tasks = _ragged_tasks()
    learner = _tiny_float64_learner(first_order, loss)
    padded_loss, padded_grad = _loss_and_gradient(learner, _padded_batch(tasks, width=9))
    alone = [
        _loss_and_gradient(learner, {k: tf.constant(v[None]) for k, v in zip(
            ("support_x", "support_y", "query_x", "query_y"), task)})
        for task in tasks
    ]
    # Equal query sizes: the batch's mean query loss is the mean over tasks.
    np.testing.assert_allclose(padded_loss, np.mean([l for l, _ in alone]), atol=1e-5)
    for i, grad in enumerate(padded_grad):
        np.testing.assert_allclose(grad, np.mean([g[i] for _, g in alone], axis=0), atol=1e-5)
    # The unrolled (vectorize=False) path honours the weights too.
    looped = _tiny_float64_learner(first_order, loss, vectorize=False)
    loop_loss, loop_grad = _loss_and_gradient(looped, _padded_batch(tasks, width=9))
    np.testing.assert_allclose(loop_loss, padded_loss, atol=1e-6)
    for a, b in zip(loop_grad, padded_grad):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_support_weight_reaches_train_step():
    # fit/train_on_batch keep `support_weight`: a padded batch of equal-size
    # supports makes the same meta-update as the unpadded batch.
    tasks = _ragged_tasks(sizes=(4, 4))
    plain = {k: tf.constant(np.stack([t[i] for t in tasks]))
             for i, k in enumerate(("support_x", "support_y", "query_x", "query_y"))}
    updated = []
    for batch in (plain, _padded_batch(tasks, width=6)):
        learner = _tiny_float64_learner(False, "mse")
        learner.train_on_batch(batch)
        updated.append(_weights(learner))
    for a, b in zip(*updated):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_paths_that_ignore_support_weight_refuse_it():
    learner = _tiny_float64_learner(True, "mse")
    with pytest.raises(ValueError, match="does not use `support_weight`"):
        learner.query_loss_curve(_padded_batch(_ragged_tasks(), width=8), steps=1)


def _regression_support():
    rng = np.random.default_rng(0)
    return rng.normal(size=(5, 1)).astype("float32"), rng.normal(size=(5, 1)).astype("float32")


def _compiled_mlp_learner(cls):
    """An MLP (one hidden layer of 8) and `cls` on it, compiled for regression."""
    backbone = fewshot.models.mlp(hidden=(8,))
    learner = cls(backbone, inner_lr=0.1)
    learner.compile(loss="mse")
    return backbone, learner


def _layer_changed(adapted, backbone, name):
    return not np.allclose(adapted.get_layer(name).get_weights()[0],
                           backbone.get_layer(name).get_weights()[0])


def test_anil_still_adapts_the_head_after_the_body_is_frozen():
    # The mask of adapted variables was fixed at construction, by position:
    # freezing the body shifted the head's variables out of it (nothing adapted).
    sx, sy = _regression_support()
    backbone, learner = _compiled_mlp_learner(fewshot.ANIL)
    backbone.get_layer("hidden_1").trainable = False
    adapted = learner.adapt(sx, sy)
    assert _layer_changed(adapted, backbone, "head")
    assert not _layer_changed(adapted, backbone, "hidden_1")
    assert adapted.adaptation_loss[1] < adapted.adaptation_loss[0]


def test_adapt_traces_again_after_a_layer_is_frozen():
    sx, sy = _regression_support()
    backbone, learner = _compiled_mlp_learner(fewshot.MAML)
    assert _layer_changed(learner.adapt(sx, sy), backbone, "hidden_1")
    backbone.get_layer("hidden_1").trainable = False
    adapted = learner.adapt(sx, sy)
    assert not _layer_changed(adapted, backbone, "hidden_1")
    assert _layer_changed(adapted, backbone, "head")


def test_adapt_layers_set_after_construction_takes_effect_and_is_checked():
    sx, sy = _regression_support()
    backbone, learner = _compiled_mlp_learner(fewshot.MAML)
    assert _layer_changed(learner.adapt(sx, sy), backbone, "hidden_1")
    learner.adapt_layers = ("head",)
    assert learner.get_config()["adapt_layers"] == ["head"]
    adapted = learner.adapt(sx, sy)
    assert not _layer_changed(adapted, backbone, "hidden_1")
    assert _layer_changed(adapted, backbone, "head")
    with pytest.raises(ValueError, match="the backbone has no layer named 'nope'"):
        learner.adapt_layers = ["nope"]
    with pytest.raises(ValueError, match="Expected a list of layer names or None. Received: adapt_layers='head'"):
        learner.adapt_layers = "head"
    assert learner.adapt_layers == ["head"]


@pytest.mark.parametrize("name", ["first_order", "vectorize", "recompute_inner"])
def test_flags_must_be_bools(name):
    with pytest.raises(ValueError, match=f"Expected a bool. Received: {name}='False'"):
        fewshot.MAML(fewshot.models.mlp(), **{name: "False"})


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers():
    learner = fewshot.MAML(
        fewshot.models.mlp(), inner_lr=np.float32(0.5), inner_steps=np.int64(2),
        support_shrinkage=np.float32(0.5), tasks_per_chunk=np.int64(2), first_order=np.bool_(True),
    )
    config = learner.get_config()
    for key, kind in [("inner_lr", float), ("inner_steps", int), ("support_shrinkage", float),
                      ("tasks_per_chunk", int), ("first_order", bool)]:
        assert type(config[key]) is kind, key
    assert config["support_shrinkage"] == 0.5 and config["inner_steps"] == 2


def test_a_plain_layer_backbone_is_refused_by_name():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    with pytest.raises(ValueError, match=r"Expected a Keras model .*Received: backbone=<Dense"):
        fewshot.MAML(layer)


def test_tasks_per_chunk_trains_on_a_partial_last_batch():
    """A batch that is not a multiple of `tasks_per_chunk` gets the whole batch's update.

    5 tasks in batches of 4: the last batch holds 1 task, fewer than a chunk
    of 2 (the first holds two chunks). Arrays, a dataset whose batch size is
    known only at run time, and the same under XLA each end the epoch with
    the weights of `tasks_per_chunk=None`.
    """
    episodes = fewshot.episodes.Sinusoid().sample(5, seed=2)
    batches = tf.data.Dataset.from_tensor_slices(episodes).batch(4)
    assert batches.element_spec["support_x"].shape[0] is None
    results = {}
    for name, chunk, x, jit in (("whole", None, batches, False), ("arrays", 2, episodes, False),
                                ("dataset", 2, batches, False), ("xla", 2, batches, True)):
        keras.utils.set_random_seed(0)
        learner = fewshot.MAML(fewshot.models.mlp(hidden=(8,)), inner_lr=0.1, inner_steps=2,
                               tasks_per_chunk=chunk)
        learner.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=jit)
        history = learner.fit(x, batch_size=4 if name == "arrays" else None, epochs=1, verbose=0)
        results[name] = history.history["loss"][0], _weights(learner)
    keras.utils.set_random_seed(0)
    initial = _weights(fewshot.models.mlp(hidden=(8,)))
    whole_loss, whole = results["whole"]
    assert max(float(np.abs(w - i).max()) for w, i in zip(whole, initial)) > 1e-3
    for name in ("arrays", "dataset", "xla"):
        loss, weights = results[name]
        np.testing.assert_allclose(loss, whole_loss, rtol=1e-5, err_msg=name)
        for a, b in zip(weights, whole):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5, err_msg=name)
