"""Rank new molecules for a new assay from a handful of labelled ones.

A trained molecule model is a folder holding the meta-learner (``model.keras``)
and the settings of its featuriser (``featurizer.json``), as written by
`save_molecule_model` (the drug-property recipe saves one per method under
``OUT/models/``). `predict_molecules` adapts it to a user's labelled support
molecules and scores every query molecule, keeping every input row in the
output: rows whose SMILES RDKit cannot parse are flagged, not dropped.
"""

import json
import pathlib

import numpy as np

from fewshot.datasets.featurize import featurizer_from_config
from fewshot.datasets.moleculenet import _SMILES_NAMES, _find_column
from fewshot.tables import read_strings

MODEL_FILE = "model.keras"
META_FILE = "featurizer.json"
_LABEL_NAMES = ("label", "active", "activity", "y", "target", "class")


def save_molecule_model(learner, featurizer, path, method=None, adapt_steps=None):
    """Saves a trained learner and its featuriser settings to folder `path`."""
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    learner.save(path / MODEL_FILE)
    meta = {"featurizer": featurizer.get_config(), "method": method, "adapt_steps": adapt_steps}
    (path / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return path


def load_molecule_model(path):
    """Loads a folder written by `save_molecule_model`.

    Returns:
        ``(learner, featurizer, meta)``.
    """
    import keras

    import fewshot.algorithms  # noqa: F401  registers the serialisable classes
    import fewshot.models  # noqa: F401  (the graph encoder's layer too)

    path = pathlib.Path(path)
    if not (path / MODEL_FILE).is_file() or not (path / META_FILE).is_file():
        raise FileNotFoundError(
            f"No molecule model at {str(path)!r}: expected a folder with "
            f"{MODEL_FILE} and {META_FILE}, such as OUT/models/protonet written "
            "by `fewshot run recipes/drug_property`."
        )
    meta = json.loads((path / META_FILE).read_text())
    learner = keras.saving.load_model(path / MODEL_FILE, compile=False)
    # Adaptation needs the per-task loss only; no optimizer state is restored.
    learner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return learner, featurizer_from_config(meta["featurizer"]), meta


def predict_molecules(
    model,
    support,
    query,
    smiles_column=None,
    label_column=None,
    steps=None,
):
    """Adapts a molecule model to labelled support molecules and ranks queries.

    Args:
        model: a folder written by `save_molecule_model`, or a tuple
            ``(learner, featurizer)``.
        support: a CSV path or `pandas.DataFrame` with a SMILES column and a
            label column of 1 (active) / 0 (inactive); at least one valid
            molecule of each.
        query: a CSV path or DataFrame with a SMILES column.
        smiles_column: name of the SMILES column (default: found by name,
            ``smiles`` in any case).
        label_column: name of the support's label column (default: a column
            named label/active/y..., or the only 0/1 column).
        steps: adaptation steps (default: the model's own); not for a
            prototypical or Siamese network, which adapt without steps.

    Returns:
        ``(predictions, support_report)``: ``predictions`` is the query
        DataFrame, every row kept in its order, with the added columns
        ``score`` (probability of being active), ``rank`` (1 = most likely
        active), ``valid`` and ``error``; ``support_report`` is the support
        DataFrame with ``valid`` and ``error`` columns.

    Example:

    >>> import pandas as pd, fewshot
    >>> from fewshot.datasets import Featurizer
    >>> from fewshot.predict_molecules import predict_molecules
    >>> encoder = fewshot.models.fingerprint_encoder(256, hidden=(32,), embedding=8)
    >>> learner = fewshot.PrototypicalNetwork(encoder)  # in practice: a trained model folder
    >>> support = pd.DataFrame({"smiles": ["c1ccccc1", "Cc1ccccc1", "CCO", "CO"],
    ...                         "label": [1, 1, 0, 0]})
    >>> query = pd.DataFrame({"smiles": ["c1ccc2ccccc2c1", "not a smiles", "CCCO"]})
    >>> predictions, _ = predict_molecules((learner, Featurizer(size=256)), support, query)
    >>> predictions["valid"].tolist()
    [True, False, True]
    """
    import pandas as pd
    import tensorflow as tf

    from fewshot.algorithms.metric_learner import MetricLearner

    if isinstance(model, (str, pathlib.Path)):
        learner, featurizer, meta = load_molecule_model(model)
        saved_steps = meta.get("adapt_steps")
    else:
        (learner, featurizer), saved_steps = model, None
    if steps is not None and isinstance(learner, MetricLearner):
        # Prototypes and nearest supports need no gradient steps: a number
        # here would be silently ignored.
        raise ValueError(
            "Invalid value received for argument `steps`: "
            f"{type(learner).__name__} adapts without gradient steps (it "
            f"classifies by distances to the support). Received: steps={steps!r}"
        )
    steps = saved_steps if steps is None else steps
    support_frame = _read_frame(support, "support")
    query_frame = _read_frame(query, "query")
    _check_free_columns(support_frame, ("valid", "error"), "support")
    _check_free_columns(query_frame, ("score", "rank", "valid", "error"), "query")
    s_smiles = _smiles_of(support_frame, smiles_column, "support")
    q_smiles = _smiles_of(query_frame, smiles_column, "query")
    labels, label_errors = _labels_of(support_frame, label_column, s_smiles)

    s_x, s_valid, s_errors = featurizer(support_frame[s_smiles].tolist())
    for i, reason in label_errors.items():
        s_valid[i] = False
        s_errors[i] = reason
    support_out = support_frame.copy()
    support_out["valid"] = s_valid
    support_out["error"] = [s_errors.get(i, "") for i in range(len(support_frame))]
    use = np.flatnonzero(s_valid)
    y = labels[use].astype(np.int32)
    if (y == 1).sum() < 1 or (y == 0).sum() < 1:
        raise ValueError(
            "Invalid value received for argument `support`: it needs at least "
            "one valid active (1) and one valid inactive (0) molecule. Received: "
            f"{int((y == 1).sum())} actives, {int((y == 0).sum())} inactives "
            f"valid, {len(support_frame) - len(use)} rows invalid"
        )
    q_x, q_valid, q_errors = featurizer(query_frame[q_smiles].tolist())
    scores = np.full(len(query_frame), np.nan)
    rows = np.flatnonzero(q_valid)
    # Adapts even when no query molecule is valid, so a bad support still fails.
    logits = learner.predict_task(s_x[use], y, q_x[rows], steps=steps)
    if len(rows):
        scores[rows] = tf.nn.softmax(logits, axis=-1).numpy()[:, 1]
    out = query_frame.copy()
    out["score"] = scores
    ranks = pd.Series(scores).rank(ascending=False, method="first")
    out["rank"] = ranks.astype("Int64").to_numpy()
    out["valid"] = q_valid
    out["error"] = [q_errors.get(i, "") for i in range(len(query_frame))]
    return out, support_out


def _read_frame(source, name):
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        return source.reset_index(drop=True)
    path = pathlib.Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"Invalid value received for argument `{name}`: no file {str(path)!r}.")
    return read_strings(path, f"{name} file {str(path)!r}")


def _check_free_columns(frame, added, name):
    """The output adds columns `added`; a column of the same name would be lost."""
    taken = [column for column in added if column in frame.columns]
    if taken:
        raise ValueError(
            f"Invalid value received for argument `{name}`: the output adds the "
            f"columns {list(added)}, which would overwrite its own {taken}. Rename "
            f"them. Its columns: {list(frame.columns)}"
        )


def _smiles_of(frame, smiles_column, name):
    column = smiles_column or _find_column(list(frame.columns), _SMILES_NAMES)
    if column is None or column not in frame.columns:
        raise ValueError(
            f"Invalid value received for argument `{name}`: no SMILES column "
            f"(pass smiles_column). Its columns: {list(frame.columns)}. "
            f"Received: smiles_column={smiles_column!r}"
        )
    return column


def _labels_of(frame, label_column, smiles_column):
    if label_column is None:
        label_column = _find_column([c for c in frame.columns if c != smiles_column], _LABEL_NAMES)
    if label_column is None:
        binary = [
            c for c in frame.columns
            if c != smiles_column and set(map(str, frame[c].unique())) <= {"0", "1", "0.0", "1.0"}
        ]
        if len(binary) == 1:
            label_column = binary[0]
    if label_column is None or label_column not in frame.columns:
        raise ValueError(
            "Invalid value received for argument `label_column`: the support "
            f"needs a column of 1/0 labels. Its columns: {list(frame.columns)}. "
            f"Received: label_column={label_column!r}"
        )
    labels = np.full(len(frame), -1, dtype=np.int64)
    errors = {}
    for i, value in enumerate(frame[label_column].tolist()):
        text = str(value).strip()
        if text in ("1", "1.0"):
            labels[i] = 1
        elif text in ("0", "0.0"):
            labels[i] = 0
        else:
            errors[i] = f"label {text!r} is not 0 or 1"
    return labels, errors
