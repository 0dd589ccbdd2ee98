"""Top-k recommendations for a new user from a handful of their ratings."""

import json
import pathlib
import warnings

import numpy as np
import pandas as pd

from fewshot.model_catalog import read_ensemble_record
from fewshot.recsys.adapter import UserAdapter
from fewshot.recsys.ensemble import EnsembleAdapter
from fewshot.tables import parse_item_id, read_strings
from fewshot.validation import check_int

_ITEM_COLUMNS = ("item", "item_id", "movie_id", "movieId", "itemId")
COLUMNS = ["rank", "item", "title", "predicted_rating", "error"]


def read_table(source, name, need_rating=False):
    """A DataFrame from a CSV path or a DataFrame, its item column named ``item``.

    Raises:
        FileNotFoundError: the CSV does not exist.
        ValueError: the file is not a readable CSV table, or has no item
            column (or no rating column when needed).
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        path = pathlib.Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"The {name} file {str(path)!r} does not exist.")
        frame = read_strings(path, f"{name} file {str(path)!r}")
    column = next((c for c in _ITEM_COLUMNS if c in frame.columns), None)
    if column is None:
        raise ValueError(
            f"Invalid value received for argument `{name}`: no item column. Expected "
            f"one of {list(_ITEM_COLUMNS)}. Received columns: {list(frame.columns)}"
        )
    frame = frame.rename(columns={column: "item"})
    if need_rating and "rating" not in frame.columns:
        raise ValueError(
            f"Invalid value received for argument `{name}`: no `rating` column. "
            f"Received columns: {list(frame.columns)}"
        )
    return frame.reset_index(drop=True)


def _as_ids(values):
    """``(ids int64 [n], readable bool [n], reasons [n])``; unreadable ids are 0."""
    parsed = [parse_item_id(value) for value in values]
    ids = np.array([0 if number is None else number for number, _ in parsed], np.int64)
    return ids, np.array([number is not None for number, _ in parsed], bool), [r for _, r in parsed]


def recommend(
    learner,
    features,
    ratings,
    candidates=None,
    top_k=10,
    age=None,
    gender=None,
    occupation=None,
    steps=None,
    inner_lr=None,
    adapter=None,
):
    """Adapts to a new user's ratings and ranks the candidate items.

    Nothing the user gave is dropped in silence: ratings and candidates whose
    item id is unknown (not in the items table) or unreadable, ratings that
    are not numbers in the rating scale, second ratings of an item (the first
    is used) and repeated candidates come back as
    rows with an ``error`` message and no rank, after the top-k.

    Args:
        learner: a compiled `fewshot.MAML` over a `recommender` backbone.
        features: the `fewshot.datasets.user_tasks.RatingFeatures` of the data.
        ratings: the user's ratings: a CSV path or DataFrame with an item
            column (``item``, ``item_id`` or ``movie_id``) and ``rating``.
        candidates: the items to rank (path or DataFrame with an item
            column); default every known item the user has not rated.
        top_k: how many recommendations.
        age, gender, occupation: the user's profile, each optional.
        steps, inner_lr: adaptation settings (default the learner's).
        adapter: a ready `UserAdapter` (reuses its compiled function) or
            `EnsembleAdapter` (a seed ensemble, see `load_adapter`); then
            `learner`, `steps` and `inner_lr` are not used.

    Returns:
        A DataFrame with columns ``rank, item, title, predicted_rating,
        error``: the top-k by predicted rating, then the error rows.

    Example:

    >>> import tempfile, pandas as pd, fewshot
    >>> from fewshot.datasets.movielens import write_tiny_movielens
    >>> from fewshot.datasets.user_tasks import RatingFeatures
    >>> from fewshot.recsys.recommend import recommend
    >>> data = fewshot.datasets.load_movielens(write_tiny_movielens(tempfile.mkdtemp()))
    >>> features = RatingFeatures.from_movielens(data)
    >>> backbone = fewshot.models.recommender(features.vocabulary_sizes(), len(features.genres), 8)
    >>> learner = fewshot.MAML(backbone, inner_lr=0.01, inner_steps=1)
    >>> learner.compile(loss="mse")
    >>> mine = pd.DataFrame({"item": [1, 2, 999], "rating": [5, 3, 4]})
    >>> table = recommend(learner, features, mine, pd.DataFrame({"item": [3, 4, 5]}), top_k=2)
    >>> int(table["error"].notna().sum()), int(table["rank"].max())
    (1, 2)
    """
    check_int("top_k", top_k, minimum=1)
    errors = []
    rated = read_table(ratings, "ratings", need_rating=True)
    ids, readable, reasons = _as_ids(rated["item"])
    values = pd.to_numeric(rated["rating"], errors="coerce").to_numpy(np.float64)
    known = np.zeros(len(rated), bool)
    known[readable] = features.known_items(ids[readable])
    low, high = 1.0, 5.0
    good_value = np.isfinite(values) & (values >= low) & (values <= high)
    use = np.zeros(len(rated), bool)
    for i in range(len(rated)):
        if not readable[i]:
            errors.append((rated["item"][i], f"rating ignored: {reasons[i]}"))
        elif not known[i]:
            errors.append((int(ids[i]), f"rating ignored: unknown item id {int(ids[i])} (not in the items table)"))
        elif not good_value[i]:
            errors.append((int(ids[i]), f"rating ignored: rating {rated['rating'][i]!r} is not a number in [{low:g}, {high:g}]"))
        elif ids[i] in ids[use]:
            errors.append((int(ids[i]), f"rating ignored: item {int(ids[i])} is rated again (the first rating is used)"))
        else:
            use[i] = True
    support_items = ids[use]
    support_y = values[use].astype(np.float32)

    if candidates is None:
        pool = features.items.index.to_numpy()
        cand_ids = pool[~np.isin(pool, support_items)]
        cand_raw = cand_ids
    else:
        table = read_table(candidates, "candidates")
        cand_raw = table["item"].to_numpy()
        parsed, ok, reasons = _as_ids(cand_raw)
        cand_ids, seen = [], set()
        for raw, value, good, reason in zip(cand_raw, parsed, ok, reasons):
            if not good:
                errors.append((raw, f"candidate ignored: {reason}"))
            elif not features.known_items([int(value)])[0]:
                errors.append((int(value), f"unknown item id {int(value)} (not in the items table)"))
            elif int(value) in seen:
                errors.append((int(value), "candidate repeated: scored once"))
            else:
                seen.add(int(value))
                cand_ids.append(int(value))
        cand_ids = np.asarray(cand_ids, np.int64)

    rows = []
    if len(cand_ids):
        codes = features.user_codes(age, gender, occupation)
        adapter = adapter or UserAdapter(learner, steps, inner_lr, clip=(1.0, 5.0))
        pred = adapter(features.encode(support_items, codes), support_y, features.encode(cand_ids, codes))
        order = np.argsort(-pred, kind="stable")[:top_k]
        titles = features.items["title"]
        for rank, j in enumerate(order, 1):
            rows.append([rank, int(cand_ids[j]), titles.loc[cand_ids[j]], float(pred[j]), None])
    for item, message in errors:
        rows.append([None, item, None, None, message])
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["rank"] = out["rank"].astype("Int64")
    return out


def load_recommender(path):
    """Loads a saved learner (.keras) and its adaptation settings (.json beside it).

    Returns:
        ``(learner, {"steps": ..., "inner_lr": ...})``.
    """
    import fewshot.models.recommender  # noqa: F401  (registers the layers)
    from fewshot.algorithms.maml import MAML
    from fewshot.export import load_keras_model

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No model at {str(path)!r}: expected a .keras file written by "
            "`fewshot run recipes/personalization` (OUT/models/maml.keras)."
        )
    with warnings.catch_warnings():
        # The saved optimizer state is not needed to adapt and predict.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        learner = load_keras_model(path)
    if not isinstance(learner, MAML):
        raise ValueError(
            f"The model {str(path)!r} is not a personalisation model: expected a "
            "MAML-family learner, as `fewshot run recipes/personalization` saves "
            f"(OUT/models/METHOD.keras). Received: a {type(learner).__name__}"
        )
    if getattr(learner, "task_loss", None) is None:
        learner.compile(loss="mse")
    sidecar = path.with_suffix(".json")
    settings = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    return learner, {"steps": settings.get("steps"), "inner_lr": settings.get("inner_lr")}


def model_files(paths):
    """The member files of the models named by `paths`.

    Args:
        paths: ``.keras`` files and folders of a seed ensemble (written by
            the recipe as ``OUT/models/METHOD/member_0.keras``, ...); a
            folder stands for the members its ``ensemble.json`` lists, or
            without one its ``member_*.keras`` files in member order.

    Returns:
        A list of ``.keras`` paths.

    Raises:
        FileNotFoundError: a path is missing, or a folder has no members.
    """
    files = []
    for path in [pathlib.Path(p) for p in ([paths] if isinstance(paths, (str, pathlib.Path)) else paths)]:
        if path.is_dir():
            record = read_ensemble_record(path)
            if record is not None:
                members = [path / name for name in record["members"]]
            else:
                members = sorted(path.glob("member_*.keras"), key=lambda p: int(p.stem.split("_")[1]))
            if not members:
                raise FileNotFoundError(
                    f"No model at {str(path)!r}: the folder has no member_*.keras files "
                    "(a seed ensemble written by `fewshot run recipes/personalization`)."
                )
            files.extend(members)
        else:
            files.append(path)
    return files


def load_adapter(paths, steps=None, clip=(1.0, 5.0)):
    """Loads one model or a seed ensemble, ready to adapt to a user.

    Each member adapts with its own settings (the ``.json`` beside it)
    unless `steps` is given. Several members are combined as the ensemble's
    ``ensemble.json`` says (default the mean).

    Args:
        paths: a ``.keras`` file, an ensemble folder, or a list of them
            (see `model_files`).
        steps: adaptation steps for every member (default each one's).
        clip: the rating scale, to which predictions are clipped.

    Returns:
        ``(learners, adapter)``: the loaded learners and a `UserAdapter`
        (one model) or `EnsembleAdapter` (several).

    Example:

    >>> import tempfile, pathlib, fewshot
    >>> from fewshot.recipes.personalization import save_learner
    >>> from fewshot.recsys.recommend import load_adapter
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for i in range(2):
    ...     learner = fewshot.MAML(fewshot.models.mlp((3,), (4,), 1), inner_lr=0.1)
    ...     learner.compile(loss="mse")
    ...     save_learner(learner, folder / f"member_{i}.keras", steps=1, inner_lr=None)
    >>> learners, adapter = load_adapter(folder)
    >>> len(learners), type(adapter).__name__
    (2, 'EnsembleAdapter')
    """
    learners, adapters = [], []
    for path in model_files(paths):
        learner, chosen = load_recommender(path)
        learners.append(learner)
        adapters.append(UserAdapter(learner, steps if steps is not None else chosen["steps"],
                                    chosen["inner_lr"], clip=clip))
    if len(adapters) == 1:
        return learners, adapters[0]
    return learners, EnsembleAdapter(adapters, _ensemble_combine(paths))


def _ensemble_combine(paths):
    """The combine of an ensemble folder's ``ensemble.json``, else the mean."""
    if isinstance(paths, (str, pathlib.Path)) and pathlib.Path(paths).is_dir():
        record = read_ensemble_record(paths)
        if record is not None:
            return record["combine"]
    return "mean"


def check_compatible(learner, features):
    """Raises ValueError if the model was trained on another item/feature set."""
    from fewshot.models.recommender import FeatureEmbedding

    layer = next((l for l in learner.backbone.layers if isinstance(l, FeatureEmbedding)), None)
    if layer is None:
        raise ValueError(
            "The model is not a personalisation model: its network has no "
            "FeatureEmbedding layer (the rating network of `fewshot run "
            f"recipes/personalization`). Its layers: {[l.name for l in learner.backbone.layers]}"
        )
    want = dict(layer.vocabulary_sizes)
    have = features.vocabulary_sizes()
    if want != have or layer.num_genres != len(features.genres):
        raise ValueError(
            "The model does not match this data folder: it was trained with "
            f"vocabulary sizes {want} and {layer.num_genres} genres; the folder "
            f"gives {have} and {len(features.genres)} genres."
        )
