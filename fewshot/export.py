"""SavedModel export whose graph runs the adaptation step itself.

`export_saved_model` writes a TensorFlow SavedModel that plain TensorFlow
(TF Serving, ``saved_model_cli``, ``tf.saved_model.load`` without keras or
fewshot installed) can serve. For a meta-learner it holds three endpoints,
each for one task at a time (no task axis) with any number of support and
query examples:

- ``serving_default``: ``inputs [N, ...] -> predictions``, the backbone with
  the meta-learned weights (for metric learners, the embedding).
- ``adapt_and_predict``: ``support_x [S, ...], support_y [S, ...],
  query_x [Q, ...] -> predictions [Q, ...]``. The learner's own
  `query_predictions` runs in the graph on a batch of one episode: MAML's
  gradient steps with the learner's learning rates and step count, the
  prototypes of a metric learner, and so on. It gives the numbers the
  learner's `evaluate` scores. A learner whose `adapt` does more than
  `query_predictions` defines ``task_predictions(support_x, support_y,
  query_x, steps=None)`` for one task in graph mode, and that is used:
  `FineTuner`'s fine-tunes its encoder and head in the graph, as its
  `adapt` does. Class labels are checked in the graph as `adapt` checks
  them (``0..N-1``, each present, for metric learners and `FineTuner`;
  within the outputs for MAML and its family): a bad ``support_y`` fails
  the call with an ``InvalidArgumentError`` naming it.
- ``embed`` (metric learners, which have an ``embed`` method):
  ``inputs -> embeddings``.

A plain Keras model (for example the one `MetaLearner.adapt` returns) gets
``serving_default`` only.

Each endpoint is a `tf.function` with an input signature, traced once; a
`tf.Module` holds the traced functions and the variables they read. The
SavedModel is written to a temporary folder beside `path` and moved into
place only when complete, so an interrupted export never leaves a
half-written model behind.
"""

import importlib
import inspect
import json
import os
import pathlib
import pkgutil
import shutil
import tempfile
import zipfile

import keras
import tensorflow as tf

from fewshot.algorithms.meta_learner import MetaLearner
from fewshot.episodes.episode import QUERY_X, QUERY_Y, SUPPORT_X, SUPPORT_Y
from fewshot.validation import check_int

SERVING_DEFAULT = "serving_default"
ADAPT_AND_PREDICT = "adapt_and_predict"
EMBED = "embed"
PREDICTIONS = "predictions"
EMBEDDINGS = "embeddings"
# Written beside the graph (the SavedModel convention for extra files).
METADATA_FILE = os.path.join("assets.extra", "fewshot.json")

_SPARSE_LOSSES = ("sparse_categorical_crossentropy",)


def export_saved_model(
    model,
    path,
    steps=None,
    input_spec=None,
    support_y_spec=None,
    overwrite=False,
    verbose=False,
):
    """Exports a meta-learner (or an adapted Keras model) as a SavedModel.

    The exported graph adapts inside TensorFlow: ``adapt_and_predict`` takes
    one task's support set and query inputs and runs the learner's inner
    loop (or prototype computation) before predicting, so a server needs
    nothing but TensorFlow.

    Input shapes and dtypes come from the backbone's `keras.Input`; labels
    are ``int32 [S]`` for metric learners and learners compiled with a
    sparse categorical loss, and otherwise have the backbone's output shape
    and dtype (``float32 [S, outputs]`` for regression). Both can be given
    explicitly.

    Batch normalisation inside ``adapt_and_predict`` follows the learner's
    `query_predictions`: MAML and its family use the statistics of the
    support (and then query) batch, as in meta-training and `evaluate`.
    ``serving_default`` runs in inference mode (moving statistics).

    Args:
        model: a compiled `fewshot.MetaLearner`, or a plain `keras.Model`
            (exported with ``serving_default`` only).
        path: the SavedModel folder to write.
        steps: inner steps baked into ``adapt_and_predict``; default the
            learner's own (``inner_steps``). Only for learners whose
            `query_predictions` takes ``steps``.
        input_spec: optional `tf.TensorSpec` of a batch of inputs
            (``[None, ...]``), for backbones without a `keras.Input`.
        support_y_spec: optional `tf.TensorSpec` of ``support_y``.
        overwrite: replace an existing non-empty folder at `path`.
        verbose: print the endpoints and their signatures.

    Returns:
        The list of endpoint (signature) names written.

    Example:

    >>> import os, tempfile, keras, numpy as np, tensorflow as tf, fewshot
    >>> backbone = fewshot.models.mlp(input_shape=(1,), hidden=(40, 40), outputs=1)
    >>> maml = fewshot.MAML(backbone, inner_lr=0.01, inner_steps=2)
    >>> maml.compile(optimizer="adam", loss="mse")
    >>> path = os.path.join(tempfile.mkdtemp(), "maml")
    >>> fewshot.export_saved_model(maml, path)
    ['serving_default', 'adapt_and_predict']
    >>> served = tf.saved_model.load(path)
    >>> task = fewshot.episodes.Sinusoid().sample(num_tasks=1, seed=1)
    >>> out = served.signatures["adapt_and_predict"](
    ...     support_x=task["support_x"][0], support_y=task["support_y"][0],
    ...     query_x=task["query_x"][0])
    >>> out["predictions"].shape
    TensorShape([10, 1])
    """
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Invalid value received for argument `model`. Expected a fewshot "
            "MetaLearner or a keras.Model. Received: model of type "
            f"{type(model).__name__}"
        )
    path = _check_out_dir(path, overwrite)
    is_learner = isinstance(model, MetaLearner)
    if is_learner:
        if model.task_loss is None:
            raise ValueError(
                f"Cannot export {type(model).__name__} {model.name!r}: it is "
                "not compiled, so its inner-loop loss is unknown. Call "
                "`compile(optimizer, loss=...)` first (a learner loaded from "
                ".keras is compiled)."
            )
        network = model.backbone
    else:
        if steps is not None or support_y_spec is not None:
            raise ValueError(
                "Arguments `steps` and `support_y_spec` only apply to "
                "meta-learners; a plain Keras model is exported with "
                f"`serving_default` only. Received: model {model.name!r} of "
                f"type {type(model).__name__}"
            )
        network = model
    x_spec = _input_spec(network, input_spec)

    endpoints = {}  # name -> traced (concrete) function
    metric = is_learner and callable(getattr(model, "embed", None))

    def add(name, fn, signature):
        function = tf.function(fn, input_signature=signature, autograph=False)
        try:
            endpoints[name] = function.get_concrete_function()
        except Exception as error:  # a trace error inside an algorithm
            raise ValueError(
                f"Cannot export {type(model).__name__} {model.name!r} to "
                f"{str(path)!r}: tracing its `{name}` endpoint failed with "
                f"{type(error).__name__}: {_first_line(error)}"
            ) from error

    if metric:
        # Metric learners serve the embedding by default.
        # `embed` of the learner is an eager convenience (it batches and
        # returns arrays); in the graph the encoder runs directly, as there.
        def embed(inputs):
            z = network(inputs, training=False)
            return {EMBEDDINGS: tf.reshape(z, [tf.shape(z)[0], -1])}

        add(SERVING_DEFAULT, embed, [_named(x_spec, "inputs")])
    else:

        def serve(inputs):
            return {PREDICTIONS: network(inputs, training=False)}

        add(SERVING_DEFAULT, serve, [_named(x_spec, "inputs")])

    y_spec = None
    if is_learner:
        y_spec = _label_spec(model, network, support_y_spec, metric)
        predict = _task_predictor(model, steps)
        check_labels = _label_checks(model, network, y_spec)

        def adapt_and_predict(support_x, support_y, query_x):
            if check_labels is not None:
                with tf.control_dependencies(check_labels(support_y)):
                    support_y = tf.identity(support_y)
            return {PREDICTIONS: predict(support_x, support_y, query_x)}

        add(
            ADAPT_AND_PREDICT,
            adapt_and_predict,
            [
                _named(x_spec, SUPPORT_X),
                _named(y_spec, SUPPORT_Y),
                _named(x_spec, QUERY_X),
            ],
        )
        if metric:
            add(EMBED, embed, [_named(x_spec, "inputs")])

    module = _servable(endpoints)
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=parent))
    try:
        try:
            tf.saved_model.save(module, str(staging), signatures=dict(endpoints))
        except Exception as error:
            raise ValueError(
                f"Cannot export {type(model).__name__} {model.name!r} to "
                f"{str(path)!r}: writing the SavedModel failed with "
                f"{type(error).__name__}: {_first_line(error)}"
            ) from error
        metadata = {
            "format": "fewshot SavedModel",
            "model_class": type(model).__name__,
            "model_name": model.name,
            "endpoints": list(endpoints),
            "inner_steps": _baked_steps(model, steps) if is_learner else None,
            # The inputs' and labels' specs (read by fewshot.model_catalog).
            "signatures": {
                "inputs": _describe(x_spec),
                **({SUPPORT_Y: _describe(y_spec)} if y_spec is not None else {}),
            },
            # Every endpoint's inputs and outputs, in order.
            "endpoint_signatures": {
                name: _describe_function(f) for name, f in endpoints.items()
            },
        }
        (staging / METADATA_FILE).parent.mkdir(exist_ok=True)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if verbose:
        for name, function in endpoints.items():
            print(f"* Endpoint {name!r}\n{function.pretty_printed_signature()}")
        print(f"Saved SavedModel at {str(path)!r}")
    return list(endpoints)


def load_saved_model(path):
    """Loads an exported SavedModel, with a clear error for a bad folder.

    Only TensorFlow is needed to load the result (this helper merely adds
    the checks); ``tf.saved_model.load(path)`` gives the same object.

    Args:
        path: the folder written by `export_saved_model`.

    Returns:
        The loaded object; its ``signatures`` map holds the endpoints.

    Raises:
        FileNotFoundError: nothing exists at `path`.
        ValueError: `path` is not a complete, readable SavedModel folder.

    Example:

    >>> import os, tempfile, fewshot
    >>> backbone = fewshot.models.mlp(input_shape=(1,), hidden=(8,), outputs=1)
    >>> path = os.path.join(tempfile.mkdtemp(), "mlp")
    >>> fewshot.export_saved_model(backbone, path)
    ['serving_default']
    >>> sorted(fewshot.load_saved_model(path).signatures)
    ['serving_default']
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"No exported model at {str(path)!r}: the path does not exist."
        )
    if not path.is_dir():
        raise ValueError(
            f"Cannot load a SavedModel from {str(path)!r}: it is a file, not "
            "a SavedModel folder (a .keras file loads with "
            "`keras.saving.load_model`)."
        )
    missing = [
        name
        for name in ("saved_model.pb", "variables/variables.index")
        if not (path / name).is_file()
    ]
    if missing:
        raise ValueError(
            f"Cannot load a SavedModel from {str(path)!r}: the folder is "
            f"incomplete or not a SavedModel (missing {', '.join(missing)})."
        )
    try:
        return tf.saved_model.load(str(path))
    except Exception as error:
        raise ValueError(
            f"Cannot load a SavedModel from {str(path)!r}: it is corrupt or "
            f"unreadable ({type(error).__name__}: {_first_line(error)})."
        ) from None


def load_keras_model(path):
    """Loads a ``.keras`` file (a learner or a plain model) with safe mode on.

    Args:
        path: the ``.keras`` file.

    Returns:
        The model, compiled if it was saved compiled.

    Raises:
        FileNotFoundError: nothing exists at `path`.
        ValueError: the file is not a readable ``.keras`` archive.

    Example:

    >>> import os, tempfile, fewshot
    >>> backbone = fewshot.models.mlp(input_shape=(1,), hidden=(8,), outputs=1)
    >>> maml = fewshot.MAML(backbone)
    >>> maml.compile(optimizer="adam", loss="mse")
    >>> path = os.path.join(tempfile.mkdtemp(), "maml.keras")
    >>> maml.save(path)
    >>> type(fewshot.export.load_keras_model(path)).__name__
    'MAML'
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No model file at {str(path)!r}: the path does not exist.")
    if path.is_dir():
        raise ValueError(
            f"Cannot load a .keras model from {str(path)!r}: it is a folder. "
            "Expected a .keras file (an exported SavedModel folder loads with "
            "`tf.saved_model.load`)."
        )
    if path.suffix != ".keras":
        raise ValueError(
            f"Cannot load a model from {str(path)!r}: expected a file ending "
            f"in .keras. Received: suffix {path.suffix or '(none)'!r}"
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Cannot load a .keras model from {str(path)!r}: the file is "
            "corrupt or truncated (not a zip archive)."
        )
    _import_serializable_modules()
    try:
        return keras.saving.load_model(str(path), safe_mode=True)
    except Exception as error:
        raise ValueError(
            f"Cannot load a .keras model from {str(path)!r}: it is corrupt or "
            f"incomplete ({type(error).__name__}: {_first_line(error)})."
        ) from None


# ---------------------------------------------------------------- helpers
def _servable(endpoints):
    """A `tf.Module` holding the traced endpoints and the variables they read.

    Keras' `ExportArchive` would fit too, but `tf.saved_model.save` traces
    its endpoint functions a second time (inside the save context), which
    doubles the export time of an unrolled inner loop; concrete functions
    traced once are saved as they are.
    """
    module = tf.Module(name="fewshot_export")
    seen, variables = set(), []
    for function in endpoints.values():
        for variable in function.variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                variables.append(variable)
    module.endpoint_variables = variables
    for name, function in endpoints.items():
        setattr(module, name, function)
    return module


_SERIALIZABLE_PACKAGES = ("fewshot.algorithms", "fewshot.models")


def _import_serializable_modules():
    """Imports every module of the learner and backbone packages.

    Their classes register themselves with Keras on import; a ``.keras`` file
    of, say, a `FineTuner` loads only once its module is imported. Returns
    the names of the modules imported.
    """
    names = []
    for package_name in _SERIALIZABLE_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__, package_name + "."):
            try:
                importlib.import_module(info.name)
            except ImportError:  # an optional dependency that is missing
                continue
            names.append(info.name)
    return names


def _check_out_dir(path, overwrite):
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(
            "Invalid value received for argument `path`. Expected a folder "
            f"path. Received: path={path!r}"
        )
    path = pathlib.Path(path)
    existing = next(parent for parent in path.absolute().parents if parent.exists())
    if not existing.is_dir():
        raise ValueError(
            f"Cannot export to {str(path)!r}: {str(existing)!r} is a file, not a "
            "folder. Received: path=" + repr(str(path))
        )
    if path.exists() and not overwrite:
        if not path.is_dir():
            raise ValueError(
                f"Cannot export to {str(path)!r}: a file exists there. Pass "
                "`overwrite=True` (`--overwrite`) to replace it."
            )
        if any(path.iterdir()):
            raise ValueError(
                f"Cannot export to {str(path)!r}: the folder exists and is not "
                "empty. Pass `overwrite=True` (`--overwrite`) to replace it."
            )
    return path


def _any_size_spec(name, spec, example):
    """`spec` (a user's `tf.TensorSpec` with an example axis) for any number of examples."""
    if not isinstance(spec, tf.TensorSpec) or spec.shape.rank in (None, 0):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a tf.TensorSpec "
            f"with an example axis first, for example {example}. Received: {name}={spec!r}"
        )
    return tf.TensorSpec([None] + spec.shape.as_list()[1:], spec.dtype)


def _input_spec(network, input_spec):
    if input_spec is not None:
        return _any_size_spec("input_spec", input_spec, "tf.TensorSpec([None, 28, 28, 1], tf.float32)")
    try:
        inputs = network.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs or len(inputs) != 1:
        raise ValueError(
            f"Cannot tell the input shape of {network.name!r}: it has no single "
            "`keras.Input`. Pass `input_spec=tf.TensorSpec([None, ...], dtype)`."
        )
    tensor = inputs[0]
    return tf.TensorSpec([None] + list(tensor.shape[1:]), tf.as_dtype(tensor.dtype))


def _label_spec(learner, network, support_y_spec, metric):
    if support_y_spec is not None:
        return _any_size_spec("support_y_spec", support_y_spec, "tf.TensorSpec([None], tf.int32)")
    if metric or _is_sparse(learner.task_loss):
        return tf.TensorSpec([None], tf.int32)
    try:
        output = network.outputs[0]
        shape, dtype = list(output.shape[1:]), tf.as_dtype(output.dtype)
    except (AttributeError, ValueError, IndexError, TypeError):
        raise ValueError(
            f"Cannot tell the label shape of {learner.name!r}: its backbone has "
            "no symbolic output. Pass `support_y_spec=tf.TensorSpec([None, ...], dtype)`."
        ) from None
    return tf.TensorSpec([None] + shape, dtype)


def _is_sparse(loss):
    fn = getattr(loss, "fn", loss)
    names = {getattr(fn, "__name__", ""), getattr(loss, "name", ""), type(loss).__name__}
    return isinstance(loss, keras.losses.SparseCategoricalCrossentropy) or bool(
        names & set(_SPARSE_LOSSES)
    )


def _task_predictor(learner, steps):
    """``fn(support_x, support_y, query_x) -> predictions`` for one task, in graph.

    A learner whose `adapt` does more than its `query_predictions` (for
    example one that fine-tunes where evaluation uses prototypes) may define
    ``task_predictions(support_x, support_y, query_x, steps=None)``, the
    graph-mode equivalent of ``adapt(support_x, support_y).predict(query_x)``;
    it is used when present. Otherwise the task becomes a batch of one
    episode for `query_predictions`.
    """
    if steps is not None:
        check_int("steps", steps)
    hook = getattr(learner, "task_predictions", None)
    if callable(hook):
        if steps is None:
            return hook
        _require_steps_argument(learner, hook, steps)
        return lambda sx, sy, qx: hook(sx, sy, qx, steps=steps)

    extra = {}
    if steps is not None:
        _require_steps_argument(learner, learner.query_predictions, steps)
        extra["steps"] = steps

    def predict(support_x, support_y, query_x):
        query_shape = tf.concat([tf.shape(query_x)[:1], tf.shape(support_y)[1:]], 0)
        episode = {
            SUPPORT_X: support_x[None],
            SUPPORT_Y: support_y[None],
            QUERY_X: query_x[None],
            # Unused by the predictions; the episode structure wants it.
            QUERY_Y: tf.zeros(query_shape, support_y.dtype)[None],
        }
        return learner.query_predictions(episode, training=False, **extra)[0]

    return predict


def _defines_classes(learner):
    """Whether the learner's classes are the support's labels (prototypes, a new head)."""
    from fewshot.algorithms.fine_tuner import FineTuner
    from fewshot.algorithms.metric_learner import MetricLearner

    return isinstance(learner, (MetricLearner, FineTuner))


def _label_checks(learner, network, y_spec):
    """``fn(support_y) -> [assert ops]``: the label checks of eager `adapt`, in the graph.

    A served ``adapt_and_predict`` would otherwise take labels that `adapt`
    refuses and answer something: labels ``[0, 0, 2, 2]`` for ProtoNet or
    FineTuner gave three classes, the middle one a phantom (a prototype at
    the origin). The call now fails with an `InvalidArgumentError` whose
    message names ``support_y`` and what is expected:

    - learners whose classes are the support's labels (metric learners,
      `FineTuner`): integer labels ``0..N-1``, each present at least once
      (`FineTuner` with ``head_init="prior"``: 0 and 1);
    - learners with a fixed number of outputs and a sparse categorical loss
      (MAML and its family): labels from 0 to the outputs minus one, as the
      loss requires (out of range, it fails on CPU and gives NaN on GPU).

    Regression labels are not checked. Returns None when nothing is checked.
    """
    if y_spec.shape.rank != 1:
        return None
    defines_classes = _defines_classes(learner)
    outputs = None
    if not defines_classes:
        if not _is_sparse(learner.task_loss) or not y_spec.dtype.is_integer:
            return None
        try:
            outputs = network.outputs[0].shape[-1]
        except (AttributeError, ValueError, IndexError, TypeError):
            outputs = None
        if outputs is None:
            return None
    binary = getattr(learner, "head_init", None) == "prior"
    received = "Received: support_y (its distinct values) ="

    def check(support_y):
        ops = []
        if y_spec.dtype.is_floating:
            ops.append(tf.debugging.Assert(
                tf.reduce_all(tf.equal(support_y, tf.round(support_y))),
                ["Invalid value received for argument `support_y`. Expected integer class "
                 f"labels. {received}", tf.unique(support_y).y],
                summarize=64,
            ))
        labels = tf.cast(support_y, tf.int32)
        distinct = tf.sort(tf.unique(labels).y)
        ops.append(tf.debugging.Assert(
            tf.size(labels) > 0,
            ["Invalid value received for argument `support_y`. Expected at least one "
             "labelled support example. Received: an empty support_y"],
        ))
        if defines_classes:
            # Sorted distinct labels are 0..N-1 exactly when the i-th is i.
            ok = tf.reduce_all(tf.equal(distinct, tf.range(tf.size(distinct))))
            expected = "0 and 1 (head_init=prior: a binary head)" if binary else "0..N-1, each present at least once"
            if binary:
                ok = tf.logical_and(ok, tf.equal(tf.size(distinct), 2))
            ops.append(tf.debugging.Assert(
                ok,
                [f"Invalid value received for argument `support_y`. Expected integer class labels "
                 f"{expected}. {received}", distinct],
                summarize=64,
            ))
        else:
            ok = tf.logical_and(tf.reduce_all(labels >= 0), tf.reduce_all(labels < outputs))
            ops.append(tf.debugging.Assert(
                ok,
                ["Invalid value received for argument `support_y`. Expected integer class labels "
                 f"0..{outputs - 1} (one per output of the model). {received}", distinct],
                summarize=64,
            ))
        return ops

    return check


def _require_steps_argument(learner, fn, steps):
    if "steps" not in inspect.signature(fn).parameters:
        raise ValueError(
            f"Invalid value received for argument `steps`: "
            f"{type(learner).__name__} has no inner steps to set. Received: "
            f"steps={steps!r}"
        )


def _baked_steps(learner, steps):
    if steps is not None:
        return steps
    for name in ("inner_steps", "finetune_steps"):
        if isinstance(getattr(learner, name, None), int):
            return getattr(learner, name)
    return None


def _named(spec, name):
    return tf.TensorSpec(spec.shape, spec.dtype, name=name)


def _describe(spec):
    return {"shape": spec.shape.as_list(), "dtype": spec.dtype.name}


def _describe_function(function):
    """``{"inputs": {name: spec}, "outputs": {name: spec}}`` of an endpoint."""
    args, kwargs = function.structured_input_signature
    inputs = {spec.name: spec for spec in args}
    inputs.update(kwargs)
    return {
        "inputs": {name: _describe(spec) for name, spec in inputs.items()},
        "outputs": {name: _describe(spec) for name, spec in function.structured_outputs.items()},
    }


def describe_signatures(path):
    """One line per endpoint of an exported model, from its metadata.

    Args:
        path: a folder written by `export_saved_model`.

    Returns:
        A list of strings such as ``"adapt_and_predict(support_x: float32
        [None, 1], ...) -> predictions: float32 [None, 1]"``.
    """
    metadata = json.loads((pathlib.Path(path) / METADATA_FILE).read_text())

    def fmt(specs):
        return ", ".join(
            f"{name}: {spec['dtype']} {spec['shape']}"
            for name, spec in specs.items()
        )

    return [
        f"{name}({fmt(sig['inputs'])}) -> {fmt(sig['outputs'])}"
        for name, sig in metadata["endpoint_signatures"].items()
    ]


def _first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
