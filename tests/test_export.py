"""SavedModel export: the adaptation step runs inside the exported graph."""

import json
import os
import pathlib
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot
from fewshot.cli import main as cli_main
from fewshot.export import (
    ADAPT_AND_PREDICT,
    EMBED,
    METADATA_FILE,
    SERVING_DEFAULT,
    export_saved_model,
    load_keras_model,
    load_saved_model,
)

TOLERANCE = 1e-5
FEATURES, CLASSES, SHOTS, QUERIES = 4, 3, 2, 5
SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


# ---------------------------------------------------------------- learners
def _algorithm(name):
    cls = getattr(fewshot.algorithms, name, None)
    if cls is None:
        pytest.skip(f"fewshot.algorithms.{name} has not landed yet")
    return cls


def _regressor():
    return fewshot.models.mlp(input_shape=(1,), hidden=(16, 16), outputs=1)


def _classifier(outputs=CLASSES):
    return fewshot.models.mlp(input_shape=(FEATURES,), hidden=(16,), outputs=outputs, activation="tanh")


def _maml():
    learner = fewshot.MAML(_regressor(), inner_lr=0.05, inner_steps=2)
    learner.compile(optimizer="adam", loss="mse")
    return learner


def _fomaml():
    learner = fewshot.MAML(_classifier(), inner_lr=0.3, inner_steps=3, first_order=True)
    learner.compile(optimizer="adam", loss=SPARSE, metrics=["accuracy"])
    return learner


def _maml_adapt_layers():
    learner = fewshot.MAML(_regressor(), inner_lr=0.05, inner_steps=2, adapt_layers=["head"])
    learner.compile(optimizer="adam", loss="mse")
    return learner


def _anil():
    learner = _algorithm("ANIL")(_classifier(), inner_lr=0.3, inner_steps=2)
    learner.compile(optimizer="adam", loss=SPARSE)
    return learner


def _meta_sgd():
    learner = _algorithm("MetaSGD")(_regressor(), inner_lr=0.05, inner_steps=2)
    learner.compile(optimizer="adam", loss="mse")
    # Distinct per-weight rates, so the test sees that the learned ones are used.
    rng = np.random.default_rng(3)
    for rate in learner.learned_rates:
        rate.assign(rng.uniform(0.01, 0.1, size=rate.shape).astype(rate.dtype))
    return learner


def _reptile():
    learner = _algorithm("Reptile")(_regressor(), inner_lr=0.05, inner_steps=3)
    learner.compile(optimizer="adam", loss="mse")
    return learner


def _protonet():
    learner = _algorithm("PrototypicalNetwork")(_classifier(outputs=8))
    learner.compile(optimizer="adam", loss=SPARSE)
    return learner


def _siamese():
    learner = _algorithm("SiameseNetwork")(_classifier(outputs=8))
    learner.compile(optimizer="adam")
    return learner


def _task_retrieval():
    learner = _algorithm("TaskRetrieval")(_regressor(), inner_lr=0.05, inner_steps=2, memory_size=4)
    learner.compile(optimizer="adam", loss="mse")
    # A remembered task: adaptation starts from its weights, baked into the export.
    task = _task("regression", seed=11)
    learner.remember(task["support_x"], task["support_y"], steps=5)
    return learner


def _fine_tuner():
    from fewshot.algorithms.fine_tuner import FineTuner

    learner = FineTuner(_classifier(outputs=8), finetune_steps=3, learning_rate=0.01)
    learner.compile(loss=SPARSE)
    return learner


# name -> (factory, task kind)
LEARNERS = {
    "maml": (_maml, "regression"),
    "fomaml": (_fomaml, "classification"),
    "maml_adapt_layers": (_maml_adapt_layers, "regression"),
    "anil": (_anil, "classification"),
    "meta_sgd": (_meta_sgd, "regression"),
    "reptile": (_reptile, "regression"),
    "protonet": (_protonet, "classification"),
    "siamese": (_siamese, "classification"),
    "task_retrieval": (_task_retrieval, "regression"),
    "fine_tuner": (_fine_tuner, "classification"),
}
METRIC = ("protonet", "siamese")
# Learners whose `adapt` does more than `query_predictions` (FineTuner
# fine-tunes; its evaluation uses the prototype head): the export matches
# `adapt(...).predict(...)` through their `task_predictions` hook.
ADAPT_BEYOND_QUERY = ("fine_tuner",)


def _task(kind, seed=0, shots=SHOTS, queries=QUERIES):
    """One task, no task axis: support_x, support_y, query_x, query_y."""
    if kind == "regression":
        task = fewshot.episodes.Sinusoid(support_shots=5 * shots, query_shots=queries).sample(
            num_tasks=1, seed=seed
        )
        return {k: np.asarray(v[0]) for k, v in task.items()}
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLASSES, FEATURES)) * 2.0
    sy = np.repeat(np.arange(CLASSES), shots).astype("int32")
    qy = rng.integers(0, CLASSES, size=queries).astype("int32")
    return {
        "support_x": (centres[sy] + rng.normal(size=(len(sy), FEATURES))).astype("float32"),
        "support_y": sy,
        "query_x": (centres[qy] + rng.normal(size=(queries, FEATURES))).astype("float32"),
        "query_y": qy,
    }


def _embedding(learner, x):
    z = learner.backbone(tf.constant(x), training=False)
    return tf.reshape(z, [tf.shape(z)[0], -1]).numpy()


def _expected(name, learner, task):
    """In-process outputs of every endpoint, from the learner's Python API."""
    sx, sy, qx = task["support_x"], task["support_y"], task["query_x"]
    adapted = learner.adapt(sx, sy)
    expected = {ADAPT_AND_PREDICT: adapted.predict(qx, verbose=0)}
    if name in METRIC:
        expected[SERVING_DEFAULT] = _embedding(learner, qx)
        expected[EMBED] = expected[SERVING_DEFAULT]
    else:
        expected[SERVING_DEFAULT] = learner.backbone(tf.constant(qx), training=False).numpy()
    return expected, adapted


# A fresh interpreter in which keras and fewshot cannot be imported at all
# (`import tensorflow` would otherwise pull parts of keras in when installed).
_SERVE_SCRIPT = r"""
import json, sys
for blocked in ("keras", "tf_keras", "fewshot"):
    sys.modules[blocked] = None  # any import of them now fails
import numpy as np
import tensorflow as tf

jobs = json.loads(sys.argv[1])
for job in jobs:
    served = tf.saved_model.load(job["model"])
    data = np.load(job["inputs"])
    outputs = {}
    for name in job["endpoints"]:
        fn = served.signatures[name]
        if name == "adapt_and_predict":
            args = {k: tf.constant(data[k]) for k in ("support_x", "support_y", "query_x")}
        else:
            args = {"inputs": tf.constant(data["query_x"])}
        (result,) = fn(**args).values()
        outputs[name] = result.numpy()
    np.savez(job["outputs"], **outputs)
leaked = sorted(
    name for name, module in sys.modules.items()
    if module is not None and name.split(".")[0] in ("keras", "fewshot", "tf_keras")
)
print(json.dumps({"leaked": leaked}))
"""


def _clean_env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONPATH", None)
    return env


def test_exports_reload_without_keras_and_match_adapt_predict(tmp_path):
    """Every learner (and an adapted model) served by plain TensorFlow."""
    jobs, expected = [], {}
    for name, (factory, kind) in LEARNERS.items():
        try:
            learner = factory()
        except pytest.skip.Exception:
            continue
        task = _task(kind, seed=1)
        want, adapted = _expected(name, learner, task)
        endpoints = export_saved_model(learner, tmp_path / name)
        assert set(endpoints) == set(want)
        np.savez(tmp_path / f"{name}_in.npz", **task)
        jobs.append(
            {
                "model": str(tmp_path / name),
                "inputs": str(tmp_path / f"{name}_in.npz"),
                "outputs": str(tmp_path / f"{name}_out.npz"),
                "endpoints": endpoints,
            }
        )
        expected[name] = want
        if name in ("maml", "protonet"):
            # The plain Keras model that `adapt` returns exports the same way.
            assert export_saved_model(adapted, tmp_path / f"{name}_adapted") == [SERVING_DEFAULT]
            jobs.append(
                {
                    "model": str(tmp_path / f"{name}_adapted"),
                    "inputs": str(tmp_path / f"{name}_in.npz"),
                    "outputs": str(tmp_path / f"{name}_adapted_out.npz"),
                    "endpoints": [SERVING_DEFAULT],
                }
            )
            expected[f"{name}_adapted"] = {SERVING_DEFAULT: want[ADAPT_AND_PREDICT]}

    result = subprocess.run(
        [sys.executable, "-c", _SERVE_SCRIPT, json.dumps(jobs)],
        capture_output=True,
        text=True,
        env=_clean_env(),
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"leaked": []}
    for name, want in expected.items():
        got = np.load(tmp_path / f"{name}_out.npz")
        for endpoint, value in want.items():
            assert got[endpoint].shape == value.shape, (name, endpoint)
            np.testing.assert_allclose(
                got[endpoint], value, atol=TOLERANCE, rtol=0, err_msg=f"{name} {endpoint}"
            )


@pytest.mark.parametrize("name", ["maml", pytest.param("protonet", marks=pytest.mark.slow)])
def test_saved_model_cli_run_matches_python_api(tmp_path, name):
    factory, kind = LEARNERS[name]
    learner = factory()
    export_saved_model(learner, tmp_path / "model")
    task = _task(kind, seed=2)
    args = []
    for key in ("support_x", "support_y", "query_x"):
        np.save(tmp_path / f"{key}.npy", task[key])
        args.append(f"{key}={tmp_path / f'{key}.npy'}")
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    if not cli.exists():
        pytest.skip(f"saved_model_cli is not installed beside {sys.executable}")
    result = subprocess.run(
        [
            str(cli), "run", "--dir", str(tmp_path / "model"), "--tag_set", "serve",
            "--signature_def", ADAPT_AND_PREDICT, "--inputs", ";".join(args),
            "--outdir", str(tmp_path / "out"),
        ],
        capture_output=True, text=True, env=_clean_env(), timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = np.load(tmp_path / "out" / "predictions.npy")
    python_api = load_saved_model(tmp_path / "model").signatures[ADAPT_AND_PREDICT](
        **{k: tf.constant(task[k]) for k in ("support_x", "support_y", "query_x")}
    )["predictions"].numpy()
    np.testing.assert_allclose(got, python_api, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(
        got, learner.adapt(task["support_x"], task["support_y"]).predict(task["query_x"], verbose=0),
        atol=TOLERANCE, rtol=0,
    )


@pytest.mark.parametrize("name", ADAPT_BEYOND_QUERY)
def test_export_of_a_fine_tuning_learner_matches_its_adapt(tmp_path, name):
    """README: FineTuner's served adapt_and_predict fine-tunes in the graph, as `adapt` does."""
    factory, kind = LEARNERS[name]
    learner = factory()
    assert callable(learner.task_predictions)
    export_saved_model(learner, tmp_path / "m")
    task = _task(kind, seed=6)
    got = load_saved_model(tmp_path / "m").signatures[ADAPT_AND_PREDICT](
        **{k: tf.constant(task[k]) for k in ("support_x", "support_y", "query_x")}
    )["predictions"].numpy()
    want = learner.adapt(task["support_x"], task["support_y"]).predict(task["query_x"], verbose=0)
    np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)


def _served_task(tmp_path, name):
    """A learner of `LEARNERS`, its served adaptation, and a 6-example support and queries."""
    factory, kind = LEARNERS[name]
    learner = factory()
    export_saved_model(learner, tmp_path / "m")
    served = tf.saved_model.load(str(tmp_path / "m")).signatures[ADAPT_AND_PREDICT]
    task = _task(kind, seed=2)
    return learner, served, task["support_x"][:6], task["query_x"]


def _served_error(served, sx, labels, qx):
    """The message (whitespace folded) with which the served adaptation refuses `labels`."""
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        served(support_x=tf.constant(sx), support_y=tf.constant(labels, tf.int32), query_x=tf.constant(qx))
    return " ".join(str(info.value).split())


@pytest.mark.parametrize("name", ["protonet", "siamese", "fine_tuner"])
def test_served_adapt_refuses_labels_that_adapt_refuses(tmp_path, name):
    """Labels [0,0,2,2] gave a phantom class 1 through the SavedModel; adapt refuses them."""
    learner, served, sx, qx = _served_task(tmp_path, name)
    for labels, shown in (([0, 0, 0, 2, 2, 2], "0 2"), ([1] * 6, "1"), ([-1, 0, 0, 1, 1, 1], "-1 0 1")):
        with pytest.raises(ValueError, match="each present at least once"):
            learner.adapt(sx, np.array(labels))
        assert ("Invalid value received for argument `support_y`. Expected integer class labels 0..N-1, "
                f"each present at least once. Received: support_y (its distinct values) =] [{shown}]"
                ) in _served_error(served, sx, labels, qx)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Expected at least one labelled support example"):
        served(support_x=tf.zeros([0, FEATURES]), support_y=tf.zeros([0], tf.int32), query_x=tf.constant(qx))
    good = np.array([0, 0, 1, 1, 2, 2], np.int32)
    got = served(support_x=tf.constant(sx), support_y=tf.constant(good), query_x=tf.constant(qx))["predictions"]
    np.testing.assert_allclose(got.numpy(), learner.adapt(sx, good).predict(qx, verbose=0), atol=TOLERANCE, rtol=0)


def test_served_fine_tuner_with_a_prior_head_wants_binary_labels(tmp_path):
    from fewshot.algorithms.fine_tuner import FineTuner

    learner = FineTuner(_classifier(outputs=8), finetune_steps=2, head_init="prior")
    learner.compile(loss=SPARSE)
    export_saved_model(learner, tmp_path / "m")
    served = tf.saved_model.load(str(tmp_path / "m")).signatures[ADAPT_AND_PREDICT]
    x = np.random.default_rng(0).normal(size=(6, FEATURES)).astype("float32")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Expected integer class labels 0 and 1 \(head_init=prior: a binary head\)"):
        served(support_x=x, support_y=tf.constant([0, 0, 1, 1, 2, 2]), query_x=x)
    assert served(support_x=x, support_y=tf.constant([0, 0, 0, 1, 1, 1]), query_x=x)["predictions"].shape == (6, 2)


@pytest.mark.parametrize("name", ["fomaml", "anil"])
def test_served_maml_classifier_refuses_labels_outside_its_outputs(tmp_path, name):
    """MAML-family classifiers have fixed outputs: a missing class is allowed (as in adapt), 5 of 3 is not."""
    learner, served, sx, qx = _served_task(tmp_path, name)
    for labels, shown in (([0, 0, 0, 5, 5, 5], "0 5"), ([-1, 0, 0, 1, 1, 1], "-1 0 1")):
        assert ("Invalid value received for argument `support_y`. Expected integer class labels 0..2 "
                f"(one per output of the model). Received: support_y (its distinct values) =] [{shown}]"
                ) in _served_error(served, sx, labels, qx)
    missing_class = np.array([0, 0, 0, 2, 2, 2], np.int32)
    got = served(support_x=tf.constant(sx), support_y=tf.constant(missing_class), query_x=tf.constant(qx))
    want = learner.adapt(sx, missing_class).predict(qx, verbose=0)
    np.testing.assert_allclose(got["predictions"].numpy(), want, atol=TOLERANCE, rtol=0)


# ------------------------------------------------------------- signatures
def _signature(served, name):
    _, kwargs = served.signatures[name].structured_input_signature
    return {k: (v.shape.as_list(), v.dtype.name) for k, v in kwargs.items()}


def test_signatures_state_dtypes_and_shapes(tmp_path):
    export_saved_model(_maml(), tmp_path / "reg")
    export_saved_model(_fomaml(), tmp_path / "cls")
    reg, cls = load_saved_model(tmp_path / "reg"), load_saved_model(tmp_path / "cls")
    assert _signature(reg, SERVING_DEFAULT) == {"inputs": ([None, 1], "float32")}
    assert _signature(reg, ADAPT_AND_PREDICT) == {
        "support_x": ([None, 1], "float32"),
        "support_y": ([None, 1], "float32"),
        "query_x": ([None, 1], "float32"),
    }
    assert _signature(cls, ADAPT_AND_PREDICT) == {
        "support_x": ([None, FEATURES], "float32"),
        "support_y": ([None], "int32"),
        "query_x": ([None, FEATURES], "float32"),
    }
    outputs = cls.signatures[ADAPT_AND_PREDICT].structured_outputs
    assert list(outputs) == ["predictions"]
    assert outputs["predictions"].shape.as_list() == [None, CLASSES]
    metadata = json.loads((tmp_path / "cls" / METADATA_FILE).read_text())
    assert metadata["model_class"] == "MAML"
    assert metadata["inner_steps"] == 3
    assert metadata["signatures"]["inputs"] == {"shape": [None, FEATURES], "dtype": "float32"}
    assert metadata["signatures"]["support_y"] == {"shape": [None], "dtype": "int32"}
    signatures = metadata["endpoint_signatures"]
    assert list(signatures[ADAPT_AND_PREDICT]["inputs"]) == ["support_x", "support_y", "query_x"]
    assert signatures[ADAPT_AND_PREDICT]["outputs"] == {
        "predictions": {"shape": [None, CLASSES], "dtype": "float32"}
    }


def test_metric_learner_has_embed_endpoint(tmp_path):
    learner = _protonet()
    endpoints = export_saved_model(learner, tmp_path / "m")
    assert endpoints == [SERVING_DEFAULT, ADAPT_AND_PREDICT, EMBED]
    served = load_saved_model(tmp_path / "m")
    x = _task("classification")["query_x"]
    out = served.signatures[EMBED](inputs=tf.constant(x))
    assert list(out) == ["embeddings"]
    np.testing.assert_allclose(out["embeddings"].numpy(), learner.embed(x), atol=TOLERANCE)


def test_variable_support_and_query_sizes(tmp_path):
    learner = _fomaml()
    export_saved_model(learner, tmp_path / "m")
    fn = load_saved_model(tmp_path / "m").signatures[ADAPT_AND_PREDICT]
    for shots, queries in ((1, 1), (4, 9)):
        task = _task("classification", seed=shots, shots=shots, queries=queries)
        got = fn(**{k: tf.constant(task[k]) for k in ("support_x", "support_y", "query_x")})
        want = learner.adapt(task["support_x"], task["support_y"]).predict(task["query_x"], verbose=0)
        assert got["predictions"].shape == (queries, CLASSES)
        np.testing.assert_allclose(got["predictions"].numpy(), want, atol=TOLERANCE, rtol=0)


def test_steps_override_is_baked_in(tmp_path):
    learner = _maml()
    export_saved_model(learner, tmp_path / "m", steps=5)
    task = _task("regression", seed=4)
    got = load_saved_model(tmp_path / "m").signatures[ADAPT_AND_PREDICT](
        **{k: tf.constant(task[k]) for k in ("support_x", "support_y", "query_x")}
    )["predictions"].numpy()
    want5 = learner.adapt(task["support_x"], task["support_y"], steps=5).predict(task["query_x"], verbose=0)
    want2 = learner.adapt(task["support_x"], task["support_y"]).predict(task["query_x"], verbose=0)
    np.testing.assert_allclose(got, want5, atol=TOLERANCE, rtol=0)
    assert np.abs(got - want2).max() > 1e-4  # the override changed the graph


def _bn_backbone():
    return keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(4, 3, padding="same", name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(),
            keras.layers.Flatten(),
            keras.layers.Dense(CLASSES, name="head"),
        ],
        name="tiny_conv",
    )


def test_batch_norm_follows_the_learner(tmp_path):
    """Transductive BN: exported adaptation equals the learner's own evaluation."""
    learner = fewshot.MAML(_bn_backbone(), inner_lr=0.1, inner_steps=2)
    learner.compile(optimizer="adam", loss=SPARSE)
    # Moving statistics that differ from any batch's, so the modes differ.
    bn = learner.backbone.get_layer("bn")
    bn.moving_mean.assign(np.full(4, 0.5, "float32"))
    bn.moving_variance.assign(np.full(4, 3.0, "float32"))
    rng = np.random.default_rng(0)
    sx = rng.normal(size=(6, 6, 6, 1)).astype("float32")
    sy = np.repeat(np.arange(CLASSES), 2).astype("int32")
    qx = rng.normal(size=(4, 6, 6, 1)).astype("float32")
    export_saved_model(learner, tmp_path / "m")
    served = load_saved_model(tmp_path / "m")
    got = served.signatures[ADAPT_AND_PREDICT](
        support_x=tf.constant(sx), support_y=tf.constant(sy), query_x=tf.constant(qx)
    )["predictions"].numpy()
    episode = {"support_x": sx[None], "support_y": sy[None], "query_x": qx[None],
               "query_y": np.zeros((1, 4), "int32")}
    np.testing.assert_allclose(got, learner(episode, training=False).numpy()[0], atol=TOLERANCE, rtol=0)
    serve = served.signatures[SERVING_DEFAULT](inputs=tf.constant(qx))["predictions"].numpy()
    np.testing.assert_allclose(serve, learner.backbone.predict(qx, verbose=0), atol=TOLERANCE, rtol=0)
    if "batch_norm" in fewshot.MAML(_bn_backbone()).get_config():
        # With moving statistics, exported adaptation equals adapt().predict().
        running = fewshot.MAML(learner.backbone, inner_lr=0.1, inner_steps=2, batch_norm="running")
        running.compile(optimizer="adam", loss=SPARSE)
        export_saved_model(running, tmp_path / "r")
        got = load_saved_model(tmp_path / "r").signatures[ADAPT_AND_PREDICT](
            support_x=tf.constant(sx), support_y=tf.constant(sy), query_x=tf.constant(qx)
        )["predictions"].numpy()
        want = running.adapt(sx, sy).predict(qx, verbose=0)
        np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)


# --------------------------------------------------------- .keras round trip
@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_keras_round_trip_in_safe_mode(tmp_path, name):
    factory, kind = LEARNERS[name]
    learner = factory()
    path = tmp_path / f"{name}.keras"
    learner.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(learner)
    assert _plain(loaded.get_config()) == _plain(learner.get_config())
    assert len(loaded.weights) == len(learner.weights)
    for a, b in zip(loaded.weights, learner.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    task = _task(kind, seed=5)
    want = learner.adapt(task["support_x"], task["support_y"]).predict(task["query_x"], verbose=0)
    got = loaded.adapt(task["support_x"], task["support_y"]).predict(task["query_x"], verbose=0)
    np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)


def test_keras_round_trip_keeps_a_trained_learner_and_its_optimizer(tmp_path):
    learner = _maml()
    stream = fewshot.episodes.Sinusoid().stream(meta_batch_size=2, batches_per_epoch=2, seed=0)
    learner.fit(stream, epochs=1, verbose=0)
    learner.save(tmp_path / "trained.keras")
    loaded = load_keras_model(tmp_path / "trained.keras")
    assert int(loaded.optimizer.iterations) == int(learner.optimizer.iterations) == 2
    for a, b in zip(loaded.optimizer.variables, learner.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(loaded.weights, learner.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _plain(config):
    """The config as JSON sees it (tuples and lists are the same there)."""
    return json.loads(json.dumps(config))


def test_loading_a_keras_file_registers_every_learner_class():
    from fewshot.export import _import_serializable_modules

    imported = _import_serializable_modules()
    assert "fewshot.algorithms.fine_tuner" in imported
    assert "fewshot.models.recommender" in imported


# ------------------------------------------------------------------ errors
def test_missing_model_folder_names_the_path(tmp_path):
    path = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"No exported model at '{path}'"):
        load_saved_model(path)


def test_file_instead_of_folder_names_the_path(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"not a folder")
    with pytest.raises(ValueError, match=f"'{path}': it is a file, not a SavedModel folder"):
        load_saved_model(path)


def test_partial_model_folder_names_the_path(tmp_path):
    export_saved_model(_maml(), tmp_path / "m")
    for item in (tmp_path / "m" / "variables").iterdir():
        item.unlink()
    with pytest.raises(ValueError, match=r"incomplete or not a SavedModel \(missing variables/variables.index\)") as info:
        load_saved_model(tmp_path / "m")
    assert str(tmp_path / "m") in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="missing saved_model.pb, variables/variables.index"):
        load_saved_model(tmp_path / "empty")


def test_corrupt_model_folder_names_the_path(tmp_path):
    export_saved_model(_maml(), tmp_path / "m")
    (tmp_path / "m" / "saved_model.pb").write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(ValueError, match="it is corrupt or unreadable") as info:
        load_saved_model(tmp_path / "m")
    assert str(tmp_path / "m") in str(info.value)


def test_bad_keras_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"No model file at '{tmp_path / 'x.keras'}'"):
        load_keras_model(tmp_path / "x.keras")
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match=f"'{garbage}': the file is corrupt or truncated"):
        load_keras_model(garbage)
    good = tmp_path / "good.keras"
    _maml().save(good)
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"'{truncated}'"):
        load_keras_model(truncated)
    partial = tmp_path / "partial.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(partial, "w") as dst:
        for item in src.namelist():
            if not item.endswith(".h5"):  # drop the weights
                dst.writestr(item, src.read(item))
    with pytest.raises(ValueError, match=f"Cannot load a .keras model from '{partial}': it is corrupt or incomplete"):
        load_keras_model(partial)
    with pytest.raises(ValueError, match="expected a file ending in .keras"):
        load_keras_model(garbage.rename(tmp_path / "model.h5"))
    with pytest.raises(ValueError, match="it is a folder"):
        load_keras_model(tmp_path)


def test_export_refuses_to_clobber_and_names_bad_arguments(tmp_path):
    learner = _maml()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match=f"Cannot export to '{tmp_path / 'busy'}': the folder exists and is not empty"):
        export_saved_model(learner, tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    export_saved_model(learner, tmp_path / "busy", overwrite=True)
    assert not (tmp_path / "busy" / "keep.txt").exists()
    assert (tmp_path / "busy" / "saved_model.pb").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # no staging left behind
    with pytest.raises(ValueError, match=r"Invalid value received for argument `steps`. Expected an integer >= 0. Received: steps=-1"):
        export_saved_model(learner, tmp_path / "a", steps=-1)
    uncompiled = fewshot.MAML(_regressor())
    with pytest.raises(ValueError, match="it is not compiled"):
        export_saved_model(uncompiled, tmp_path / "b")
    with pytest.raises(ValueError, match="only apply to meta-learners"):
        export_saved_model(learner.backbone, tmp_path / "c", steps=2)
    with pytest.raises(ValueError, match="Expected a fewshot MetaLearner or a keras.Model. Received: model of type str"):
        export_saved_model("model.keras", tmp_path / "d")
    (tmp_path / "file.csv").write_text("x\n")
    with pytest.raises(ValueError, match=f"Cannot export to '{tmp_path / 'file.csv' / 'sub'}': '{tmp_path / 'file.csv'}' is a file, not a folder"):
        export_saved_model(learner, tmp_path / "file.csv" / "sub")
    for name, spec in (("input_spec", (None, 1)), ("support_y_spec", tf.TensorSpec([], tf.float32))):
        with pytest.raises(ValueError, match=(
            rf"Invalid value received for argument `{name}`. Expected a tf.TensorSpec with an "
            rf"example axis first, for example .*Received: {name}=")):
            export_saved_model(learner, tmp_path / "f", **{name: spec})
    assert not (tmp_path / "f").exists()
    if "PrototypicalNetwork" in dir(fewshot.algorithms):
        with pytest.raises(ValueError, match="PrototypicalNetwork has no inner steps to set"):
            export_saved_model(_protonet(), tmp_path / "e", steps=3)


class _EagerOnly(fewshot.MetaLearner):
    """A learner whose query_predictions needs eager tensors (not exportable)."""

    def query_predictions(self, episodes, training=False):
        scale = float(episodes["support_y"].numpy().mean())  # fails in a graph
        return self.backbone(episodes["query_x"][0], training=False)[None] * scale


def test_a_learner_that_cannot_run_in_a_graph_gets_a_clear_error(tmp_path):
    learner = _EagerOnly(_regressor(), name="eager_only")
    learner.compile(loss="mse")
    with pytest.raises(ValueError, match=r"Cannot export _EagerOnly 'eager_only' to '.*m': tracing its `adapt_and_predict` endpoint failed with"):
        export_saved_model(learner, tmp_path / "m")
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------- CLI
def test_cli_export_writes_a_servable_model(tmp_path, capsys):
    learner = _maml()
    learner.save(tmp_path / "maml.keras")
    assert cli_main(["export", str(tmp_path / "maml.keras"), str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "saved_model_cli show --all" in printed
    assert (
        "adapt_and_predict(support_x: float32 [None, 1], support_y: float32 [None, 1], "
        "query_x: float32 [None, 1]) -> predictions: float32 [None, 1]"
    ) in printed
    served = load_saved_model(tmp_path / "out")
    assert sorted(served.signatures) == [ADAPT_AND_PREDICT, SERVING_DEFAULT]
    # A second export to the same place needs --overwrite.
    assert cli_main(["export", str(tmp_path / "maml.keras"), str(tmp_path / "out")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli_main(["export", str(tmp_path / "maml.keras"), str(tmp_path / "out"), "--overwrite", "--steps", "4"]) == 0
    metadata = json.loads((tmp_path / "out" / METADATA_FILE).read_text())
    assert metadata["inner_steps"] == 4
    # A model that `adapt` returned, saved as .keras, exports with serving_default.
    task = _task("regression", seed=7)
    adapted = learner.adapt(task["support_x"], task["support_y"])
    adapted.save(tmp_path / "adapted.keras")
    assert cli_main(["export", str(tmp_path / "adapted.keras"), str(tmp_path / "adapted")]) == 0
    served = load_saved_model(tmp_path / "adapted")
    assert sorted(served.signatures) == [SERVING_DEFAULT]
    got = served.signatures[SERVING_DEFAULT](inputs=tf.constant(task["query_x"]))["predictions"]
    np.testing.assert_allclose(got.numpy(), adapted.predict(task["query_x"], verbose=0), atol=TOLERANCE, rtol=0)


def test_cli_export_overwrite_refuses_a_folder_holding_the_model(tmp_path, capsys):
    """--overwrite replaced OUT_DIR after loading, deleting the .keras file (and its neighbours)."""
    models = tmp_path / "models"
    models.mkdir()
    _maml().save(models / "maml.keras")
    (models / "other.keras").write_text("another model")
    for out in (models, tmp_path):
        assert cli_main(["export", str(models / "maml.keras"), str(out), "--overwrite"]) == 2
        assert capsys.readouterr().err == (
            f"fewshot export: error: --overwrite would delete the model being exported: "
            f"{models / 'maml.keras'} is inside OUT_DIR. Choose another OUT_DIR. Received: OUT_DIR {out}\n"
        )
    assert sorted(p.name for p in models.iterdir()) == ["maml.keras", "other.keras"]
    assert cli_main(["export", str(models / "maml.keras"), str(models / "sm"), "--overwrite"]) == 0


def test_cli_export_bad_model_is_one_line_naming_the_path(tmp_path, capsys):
    missing = tmp_path / "missing.keras"
    assert cli_main(["export", str(missing), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"fewshot export: error: No model file at '{missing}': the path does not exist."
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_text("hello")
    assert cli_main(["export", str(corrupt), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(corrupt) in err
    assert not (tmp_path / "out").exists()


# -------------------------------------------------------------------- Conv4
def test_conv4_export_adapts_like_the_learner(tmp_path):
    # Its time (issue #5: under 30 s on 2 cores) is measured by benchmarks/export_time.py.
    backbone = fewshot.models.conv4(input_shape=(28, 28, 1), outputs=5)
    learner = fewshot.MAML(backbone, inner_lr=0.4, inner_steps=5)
    learner.compile(optimizer="adam", loss=SPARSE)
    export_saved_model(learner, tmp_path / "conv4")
    rng = np.random.default_rng(0)
    sx = rng.normal(size=(5, 28, 28, 1)).astype("float32")
    sy = np.arange(5, dtype="int32")
    qx = rng.normal(size=(10, 28, 28, 1)).astype("float32")
    got = load_saved_model(tmp_path / "conv4").signatures[ADAPT_AND_PREDICT](
        support_x=tf.constant(sx), support_y=tf.constant(sy), query_x=tf.constant(qx)
    )["predictions"].numpy()
    episode = {"support_x": sx[None], "support_y": sy[None], "query_x": qx[None],
               "query_y": np.zeros((1, 10), "int32")}
    want = learner(episode, training=False).numpy()[0]
    np.testing.assert_allclose(got, want, atol=1e-4 * max(1.0, np.abs(want).max()), rtol=0)
