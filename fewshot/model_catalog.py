"""Finding, describing, loading and training the models a front end offers.

`find_models` scans folders for what `make demo`, the recipes and
`fewshot export` write:

- ``.keras`` files (``runs/*/models/*.keras``): meta-learners, or plain
  Keras models that are fine-tuned with gradient steps;
- molecule model folders (``model.keras`` + ``featurizer.json``, written by
  `fewshot.predict_molecules.save_molecule_model`);
- exported SavedModel folders (``saved_model.pb``), which adapt inside their
  own graph (``adapt_and_predict``): regression (float labels), or
  classification (int labels) of images;
- personalisation models (``recipes/personalization``: a MAML-family
  learner over a `fewshot.models.recommender` backbone), domain
  ``"ratings"``, recognised by their ``FeatureEmbedding`` layer;
- seed ensembles of personalisation models (a folder with ``ensemble.json``
  and ``member_*.keras``, written by ``recipes/personalization`` with
  ``ensemble_seeds``), kind ``"ensemble"``, listed once as the folder;
- tabular classifiers, domain ``"tabular"``: a learner over rows of numbers
  (one input of shape ``[batch, features]``) that is a metric learner
  (`PrototypicalNetwork`, `SiameseNetwork`) or is compiled with a sparse
  categorical loss (integer labels: MAML, ANIL, MetaSGD...); exported, a
  SavedModel whose ``adapt_and_predict`` takes int labels and rank-2 inputs.

A ``.keras`` file is described from its ``config.json`` alone (a JSON entry
of the zip archive), so listing models loads no weights and runs no code.

Example:

>>> import os, tempfile
>>> from fewshot.model_catalog import find_models
>>> find_models([tempfile.mkdtemp()])
[]
"""

import dataclasses
import json
import os
import pathlib
import zipfile

#: Environment variable naming the folder(s) to scan, separated by os.pathsep.
MODELS_DIR_ENV = "FEWSHOT_MODELS_DIR"
#: The folder scanned when nothing else is said.
DEFAULT_MODELS_DIR = "runs"
#: Domains a model can serve.
REGRESSION, MOLECULES, IMAGES, RATINGS, OTHER = "regression", "molecules", "images", "ratings", "other"
TABULAR = "tabular"
#: Learners that classify by distances between embeddings (any number of classes).
METRIC_LEARNERS = ("PrototypicalNetwork", "SiameseNetwork")
_CLASSIFICATION_LOSSES = (
    "sparse_categorical_crossentropy", "SparseCategoricalCrossentropy",
)
_REGRESSION_LOSSES = (
    "mean_squared_error", "mse", "mean_absolute_error", "mae", "huber", "huber_loss",
    "MeanSquaredError", "MeanAbsoluteError", "Huber", "log_cosh", "LogCosh",
)
_MAX_DEPTH = 4
#: The record of a seed ensemble's folder (`fewshot.recsys.recommend.load_adapter`).
ENSEMBLE_RECORD = "ensemble.json"


def write_ensemble_record(folder, members, combine):
    """Writes a seed ensemble's record: its member files (in order) and how they combine.

    Args:
        folder: the ensemble's folder (it holds the member files).
        members: the member file names, relative to `folder`.
        combine: ``"mean"`` or ``"median"``.

    Example:

    >>> import tempfile
    >>> from fewshot.model_catalog import read_ensemble_record, write_ensemble_record
    >>> folder = tempfile.mkdtemp()
    >>> write_ensemble_record(folder, ["member_0.keras", "member_1.keras"], "mean")
    >>> read_ensemble_record(folder)
    {'combine': 'mean', 'members': ['member_0.keras', 'member_1.keras']}
    """
    record = {"combine": combine, "members": [str(m) for m in members]}
    (pathlib.Path(folder) / ENSEMBLE_RECORD).write_text(json.dumps(record) + "\n")


def read_ensemble_record(folder):
    """A seed ensemble folder's record (see `write_ensemble_record`), or None.

    Returns:
        ``{"combine": ..., "members": [...]}`` (combine defaults to
        ``"mean"``), or None where the folder has no record.

    Raises:
        ValueError: the record is not JSON with a non-empty ``members`` list.
    """
    path = pathlib.Path(folder) / ENSEMBLE_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        members = record["members"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"Invalid ensemble record {str(path)!r}: expected JSON with a `members` list. "
            f"Received: {error}"
        ) from None
    if not isinstance(members, list) or not members:
        raise ValueError(
            f"Invalid ensemble record {str(path)!r}: `members` must be a non-empty list. "
            f"Received: members={members!r}"
        )
    return {"combine": record.get("combine", "mean"), "members": [str(m) for m in members]}


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One model found on disk.

    Attributes:
        path: the ``.keras`` file or the model folder.
        kind: ``"keras"``, ``"molecule"``, ``"saved_model"`` or
            ``"ensemble"`` (a folder of seed-ensemble members).
        domain: ``"regression"``, ``"molecules"``, ``"images"``,
            ``"ratings"``, ``"tabular"`` or ``"other"``.
        model_class: the class name (``MAML``, ``PrototypicalNetwork``...).
        input_dim: the number of inputs of a tabular model, or None.
        inner_lr: the learner's own inner learning rate, when it has one.
        inner_steps: the learner's own (or baked-in) inner step count.
        label: a short text for a list of choices.
        input_shape: the shape of one input (without the batch axis).
        num_classes: the fixed number of classes of an exported classifier
            (None: any number, as for prototypes, not a classifier, or a
            ``.keras`` file, whose class count is read once it is loaded).
        endpoints: the endpoints of an exported SavedModel.
    """

    path: str
    kind: str
    domain: str
    model_class: str
    input_dim: object = None
    inner_lr: object = None
    inner_steps: object = None
    label: str = ""
    input_shape: object = None
    num_classes: object = None
    endpoints: tuple = ()


def models_dirs(value=None):
    """The folders to scan: `value`, else ``$FEWSHOT_MODELS_DIR``, else ``runs``."""
    value = value or os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR
    if isinstance(value, (str, os.PathLike)):
        value = [p for p in str(value).split(os.pathsep) if p]
    return [pathlib.Path(p) for p in value]


def find_models(roots=None):
    """Lists the models under the given folders.

    Args:
        roots: folders (or one folder, or an ``os.pathsep``-separated
            string); default `models_dirs()`.

    Returns:
        A list of `ModelEntry`, sorted by path. Files that cannot be read
        are left out.
    """
    entries = {}
    for root in models_dirs(roots):
        if not root.is_dir():
            continue
        for path in _walk(root, _MAX_DEPTH):
            entry = describe(path)
            if entry is not None:
                entries[entry.path] = entry
    return [entries[k] for k in sorted(entries)]


def _walk(root, depth):
    try:
        children = sorted(root.iterdir())
    except OSError:
        return
    for child in children:
        if child.name.startswith(".") or child.name in ("backup", "variables", "assets"):
            continue
        if child.is_file() and child.suffix == ".keras":
            if not (child.parent / "featurizer.json").is_file():
                yield child
        elif child.is_dir():
            if (child / "saved_model.pb").is_file() or (child / ENSEMBLE_RECORD).is_file() or (
                (child / "model.keras").is_file() and (child / "featurizer.json").is_file()
            ):
                yield child
            elif depth > 0:
                yield from _walk(child, depth - 1)


def describe(path):
    """A `ModelEntry` for a ``.keras`` file or model folder, or None."""
    path = pathlib.Path(path)
    try:
        if path.is_dir() and (path / ENSEMBLE_RECORD).is_file():
            return _describe_ensemble(path)
        if path.is_dir() and (path / "saved_model.pb").is_file():
            return _describe_saved_model(path)
        if path.is_dir() and (path / "featurizer.json").is_file():
            config = _keras_config(path / "model.keras")
            info = _learner_info(config)
            return ModelEntry(
                str(path), "molecule", MOLECULES, info["model_class"],
                inner_lr=info["inner_lr"], inner_steps=info["inner_steps"],
                label=f"{_short(path)} ({info['model_class']}, molecules)",
            )
        if path.is_file() and path.suffix == ".keras":
            info = _learner_info(_keras_config(path))
            shape = info["input_shape"]
            if info["ratings"]:
                domain, inputs = RATINGS, ", user ratings"
            elif info["regression"] and info["input_dim"]:
                domain, inputs = REGRESSION, f", {info['input_dim']} input(s)"
            elif shape and len(shape) == 3 and not info["regression"]:
                domain, inputs = IMAGES, f", {shape[0]}x{shape[1]}x{shape[2]} images"
            elif info["input_dim"] and (info["classification"] or info["metric"]):
                domain, inputs = TABULAR, f", {info['input_dim']} feature(s), classifier"
            else:
                domain, inputs = OTHER, ""
            return ModelEntry(
                str(path), "keras", domain, info["model_class"], info["input_dim"],
                info["inner_lr"], info["inner_steps"],
                label=f"{_short(path)} ({info['model_class']}{inputs})", input_shape=shape,
            )
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return None
    return None


def _short(path):
    parts = pathlib.Path(path).parts
    return os.path.join(*parts[-3:]) if len(parts) >= 3 else str(path)


def _keras_config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _input_layers(config):
    found = []
    if isinstance(config, dict):
        if config.get("class_name") == "InputLayer":
            found.append(config.get("config", {}))
        for value in config.values():
            found.extend(_input_layers(value))
    elif isinstance(config, list):
        for value in config:
            found.extend(_input_layers(value))
    return found


def _learner_info(config):
    inner = config.get("config", {})
    compile_config = config.get("compile_config") or {}
    loss = compile_config.get("loss")
    loss_names = set()
    if isinstance(loss, str):
        loss_names.add(loss)
    elif isinstance(loss, dict):
        loss_names.update(str(loss.get(k)) for k in ("class_name", "config") if loss.get(k))
        if isinstance(loss.get("config"), dict):
            loss_names.add(str(loss["config"].get("name")))
    inputs = _input_layers(config)
    input_dim = input_shape = None
    if len(inputs) == 1:
        shape = inputs[0].get("batch_shape") or inputs[0].get("batch_input_shape")
        if shape and all(isinstance(d, int) for d in shape[1:]):
            input_shape = tuple(shape[1:])
        if shape and len(shape) == 2 and isinstance(shape[1], int):
            input_dim = shape[1]
    return {
        "model_class": config.get("class_name", "?"),
        "inner_lr": inner.get("inner_lr"),
        "inner_steps": inner.get("inner_steps"),
        "input_dim": input_dim,
        "input_shape": input_shape,
        "regression": bool(loss_names & set(_REGRESSION_LOSSES)),
        "classification": bool(loss_names & set(_CLASSIFICATION_LOSSES)),
        "metric": config.get("class_name") in METRIC_LEARNERS,
        "ratings": _has_layer(config, "FeatureEmbedding"),
    }


def _has_layer(config, class_name):
    """Whether a layer of class `class_name` appears anywhere in `config`."""
    if isinstance(config, dict):
        if config.get("class_name") == class_name:
            return True
        return any(_has_layer(v, class_name) for v in config.values())
    if isinstance(config, list):
        return any(_has_layer(v, class_name) for v in config)
    return False


def _describe_ensemble(path):
    """The entry of a seed ensemble's folder: its first member's, for the whole folder.

    Only personalisation ensembles (domain ``"ratings"``) are served as one
    model; a folder of other members is left out.
    """
    try:
        members = read_ensemble_record(path)["members"]
    except ValueError:
        return None
    first = describe(path / members[0])
    if first is None or first.domain != RATINGS:
        return None
    return dataclasses.replace(
        first, path=str(path), kind="ensemble",
        label=f"{_short(path)} ({len(members)}-member {first.model_class} ensemble, user ratings)",
    )


def _describe_saved_model(path):
    meta_file = path / "assets.extra" / "fewshot.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    endpoints = tuple(meta.get("endpoints", []))
    shape = (meta.get("signatures", {}).get("inputs") or {}).get("shape")
    shape = tuple(shape) if isinstance(shape, list) else None
    input_dim = shape[1] if shape and len(shape) == 2 else None
    label_dtype = str((meta.get("signatures", {}).get("support_y") or {}).get("dtype", ""))
    adapts = "adapt_and_predict" in endpoints
    image = bool(
        shape and len(shape) == 4 and all(isinstance(d, int) for d in shape[1:]) and shape[-1] in (1, 3)
    )
    predictions = (
        ((meta.get("endpoint_signatures") or {}).get("adapt_and_predict") or {}).get("outputs") or {}
    ).get("predictions") or {}
    out_shape = predictions.get("shape") or []
    num_classes = out_shape[-1] if len(out_shape) == 2 and isinstance(out_shape[-1], int) else None
    if adapts and label_dtype.startswith("float") and input_dim:
        domain, text = REGRESSION, ""
    elif adapts and label_dtype.startswith("int") and image:
        domain, text = IMAGES, f", {shape[1]}x{shape[2]}x{shape[3]} images"
    elif adapts and label_dtype.startswith("int") and isinstance(input_dim, int):
        domain, text = TABULAR, f", {input_dim} feature(s), classifier"
    else:
        domain, text = OTHER, ""
    model_class = meta.get("model_class", "SavedModel")
    return ModelEntry(
        str(path), "saved_model", domain, model_class, input_dim,
        inner_steps=meta.get("inner_steps"),
        label=f"{_short(path)} (exported {model_class}{text})",
        input_shape=shape[1:] if shape else None,
        num_classes=num_classes if domain in (IMAGES, TABULAR) else None,
        endpoints=endpoints,
    )


def load_learner(entry, inner_lr=0.01):
    """Loads a ``.keras`` entry as a compiled meta-learner.

    A plain Keras model (such as the sinusoid recipe's ``pretrained.keras``)
    is wrapped in `fewshot.MAML`, so that adapting it means fine-tuning it
    with gradient steps on the support set.

    Args:
        entry: a `ModelEntry` of kind ``"keras"``, or a path.
        inner_lr: the step size given to a wrapped plain model.

    Returns:
        A compiled `fewshot.MetaLearner`.
    """
    from fewshot.algorithms.maml import MAML
    from fewshot.algorithms.meta_learner import MetaLearner
    from fewshot.export import load_keras_model

    path = entry.path if isinstance(entry, ModelEntry) else str(entry)
    model = load_keras_model(path)
    if isinstance(model, MetaLearner):
        if model.task_loss is None:
            model.compile(loss="mse")
        return model
    loss = getattr(model, "loss", None) or "mse"
    learner = MAML(model, inner_lr=inner_lr, inner_steps=1, name=f"{model.name}_finetune")
    learner.compile(loss=loss)
    return learner


def adapt(learner, support_x, support_y, steps=None, inner_lr=None):
    """``learner.adapt`` with the arguments this learner takes.

    Learners that adapt without gradient steps (prototypes) take no
    ``inner_lr``; it is then left out, as is ``steps`` when None.
    """
    import inspect

    accepted = inspect.signature(learner.adapt).parameters
    kwargs = {}
    if steps is not None and "steps" in accepted:
        kwargs["steps"] = steps
    if inner_lr is not None and "inner_lr" in accepted:
        kwargs["inner_lr"] = inner_lr
    return learner.adapt(support_x, support_y, **kwargs)


def takes_inner_lr(learner):
    """Whether ``learner.adapt`` takes an ``inner_lr``."""
    import inspect

    return "inner_lr" in inspect.signature(learner.adapt).parameters


def train_default(out_dir, meta_steps=3000, seed=0, progress=None, recipe_dir=None):
    """Meta-trains the small default: MAML on sinusoid regression.

    A shorter run of the sinusoid recipe's model (its `recipe.toml`
    settings: MLP 1-40-40-1, K=10, meta-batch 25, inner lr 0.01, Adam 1e-3)
    for front ends that have no trained model yet. About 20-40 s for 3000
    meta-steps on 2 CPU cores.

    Args:
        out_dir: the run folder; the model is written to
            ``out_dir/models/maml.keras``.
        meta_steps: meta-updates to run.
        seed: the random seed.
        progress: optional ``fn(fraction, text)`` called as training goes.
        recipe_dir: the sinusoid recipe folder (default ``recipes/sinusoid``
            beside the package, else built-in settings).

    Returns:
        The path of the saved ``.keras`` file.
    """
    import keras

    from fewshot.algorithms.maml import MAML
    from fewshot.episodes.regression import Sinusoid
    from fewshot.models.mlp import mlp
    from fewshot.recipes.sinusoid import fit_steps

    if isinstance(meta_steps, bool) or not isinstance(meta_steps, int) or meta_steps < 1:
        raise ValueError(
            "Invalid value received for argument `meta_steps`. Expected a "
            f"positive integer. Received: meta_steps={meta_steps!r}"
        )
    settings = _sinusoid_settings(recipe_dir)
    keras.utils.set_random_seed(seed)
    learner = MAML(
        mlp(input_shape=(1,), hidden=settings["hidden"], outputs=1),
        inner_lr=settings["inner_lr"],
        inner_steps=settings["inner_steps"],
        name="maml",
    )
    learner.compile(optimizer=keras.optimizers.Adam(settings["outer_lr"]), loss="mse")
    per_epoch = min(100, meta_steps)  # the last epoch shorter when 100 does not divide meta_steps
    family = Sinusoid(
        **settings["task"], support_shots=settings["support_shots"],
        query_shots=settings["query_shots"],
    )
    stream = family.stream(settings["meta_batch_size"], per_epoch, seed=seed)

    class _Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if progress is not None:
                loss = (logs or {}).get("loss")
                done = min((epoch + 1) * per_epoch, meta_steps)
                text = f"meta-step {done} of {meta_steps}"
                if loss is not None:
                    text += f", query loss {float(loss):.3f}"
                progress(done / meta_steps, text)

    fit_steps(learner, stream, meta_steps, callbacks=[_Progress()], verbose=0)
    path = pathlib.Path(out_dir) / "models" / "maml.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    learner.save(path)
    return path


def _sinusoid_settings(recipe_dir=None):
    settings = {
        "task": {"amplitude_range": (0.1, 5.0), "phase_range": (0.0, 3.141592653589793),
                 "x_range": (-5.0, 5.0)},
        "hidden": [40, 40], "support_shots": 10, "query_shots": 10, "meta_batch_size": 25,
        "inner_lr": 0.01, "inner_steps": 1, "outer_lr": 1e-3,
    }
    folder = pathlib.Path(recipe_dir) if recipe_dir else (
        pathlib.Path(__file__).resolve().parent.parent / "recipes" / "sinusoid"
    )
    if (folder / "recipe.toml").is_file():
        from fewshot.recipes.config import load_recipe

        config = load_recipe(str(folder))
        train = config.get("train", {})
        task = config.get("task", {})
        settings["task"] = {k: tuple(task[k]) for k in settings["task"] if k in task} or settings["task"]
        settings["hidden"] = list(config.get("model", {}).get("hidden", settings["hidden"]))
        for key in ("support_shots", "query_shots", "meta_batch_size", "inner_steps"):
            settings[key] = int(train.get(key, settings[key]))
        for key in ("inner_lr", "outer_lr"):
            settings[key] = float(train.get(key, settings[key]))
    return settings


def saved_model_zip(model, steps=None, extra_files=None):
    """Exports `model` as a SavedModel and returns the folder zipped, as bytes.

    Args:
        model: an adapted Keras model (from `MetaLearner.adapt`) or a
            compiled meta-learner; see `fewshot.export_saved_model`.
        steps: inner steps baked into a learner's ``adapt_and_predict``.
        extra_files: optional ``{relative path: text or bytes}`` written
            into the folder too (for example ``assets.extra/classes.json``,
            the class names of an adapted classifier's outputs).

    Returns:
        The bytes of a zip archive whose top folder is the SavedModel.
    """
    import io
    import shutil
    import tempfile

    from fewshot.export import export_saved_model

    with tempfile.TemporaryDirectory(prefix="fewshot-export-") as tmp:
        folder = pathlib.Path(tmp) / (model.name or "model")
        export_saved_model(model, folder, steps=steps)
        for relative, content in (extra_files or {}).items():
            target = (folder / relative).resolve()
            if folder.resolve() not in target.parents:
                raise ValueError(
                    "Invalid value received for argument `extra_files`: paths must stay "
                    f"inside the SavedModel folder. Received: {relative!r}"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.encode() if isinstance(content, str) else bytes(content))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(folder.rglob("*")):
                if file.is_file():
                    archive.write(file, os.path.join(folder.name, file.relative_to(folder)))
        shutil.rmtree(folder, ignore_errors=True)
    return buffer.getvalue()
