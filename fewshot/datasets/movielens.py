"""MovieLens ratings, users and items from the canonical files or TFDS.

Reads the GroupLens folders as they are distributed: MovieLens-100K
(``u.data``, ``u.item`` in Latin-1, ``u.user``, ``u.genre``,
``u.occupation``) and MovieLens-1M (``ratings.dat``, ``movies.dat``,
``users.dat``, ``::``-separated, Latin-1), or the TFDS dataset
``movielens/100k-ratings`` when online. Every source comes back in one
schema, `MovieLens`:

- ``ratings``: columns ``user, item, rating, timestamp`` (ints; rating float).
- ``users``: ``user, age, gender, occupation`` (gender "M"/"F", occupation a
  name from ``occupations``).
- ``items``: ``item, title, year`` and one 0/1 column per genre of
  ``genres`` (year is 0 when unknown).

The data's terms forbid redistribution: read it by path, never copy it into
a repository or a package.
"""

import dataclasses
import pathlib
import re

import numpy as np
import pandas as pd

# Occupation codes of MovieLens-1M's users.dat (from its README).
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin",
    "college/grad student", "customer service", "doctor/health care",
    "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed",
    "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
ML1M_GENRES = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical",
    "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_FILES_100K = ("u.data", "u.item", "u.user", "u.genre", "u.occupation")
_FILES_1M = ("ratings.dat", "movies.dat", "users.dat")
_YEAR = re.compile(r"(\d{4})")


@dataclasses.dataclass
class MovieLens:
    """Ratings, users and items of one MovieLens release, in one schema.

    Attributes:
        name: ``"ml-100k"``, ``"ml-1m"`` or ``"tfds:movielens/100k-ratings"``.
        ratings: DataFrame ``user, item, rating, timestamp``.
        users: DataFrame ``user, age, gender, occupation``.
        items: DataFrame ``item, title, year`` + one column per genre.
        genres: genre names, in column order.
        occupations: occupation names.
        path: the folder read, or None.
    """

    name: str
    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    genres: list
    occupations: list
    path: str = None

    def __repr__(self):
        return (
            f"MovieLens({self.name!r}: {len(self.ratings)} ratings, "
            f"{len(self.users)} users, {len(self.items)} items)"
        )


def load_movielens(path):
    """Reads a MovieLens-100K or -1M folder.

    Args:
        path: the folder holding the files (``ml-100k/`` or ``ml-1m/``), or
            a parent folder holding one of those.

    Returns:
        A `MovieLens` object.

    Raises:
        FileNotFoundError: the folder or one of its files is missing; the
            message names the path and the files expected.
        ValueError: a file lacks columns or holds unreadable values; the
            message names the file and the line.

    Example:

    >>> import tempfile, fewshot
    >>> from fewshot.datasets.movielens import write_tiny_movielens
    >>> folder = write_tiny_movielens(tempfile.mkdtemp(), num_users=5, num_items=8)
    >>> data = fewshot.datasets.load_movielens(folder)
    >>> sorted(data.ratings.columns)
    ['item', 'rating', 'timestamp', 'user']
    """
    root = pathlib.Path(path)
    if not root.is_dir():
        raise FileNotFoundError(
            f"MovieLens folder not found: {str(root)!r}. Expected a folder "
            f"with {', '.join(_FILES_100K)} (100K) or {', '.join(_FILES_1M)} (1M)."
        )
    for candidate in (root, root / "ml-100k", root / "ml-1m"):
        if (candidate / "u.data").is_file() or (candidate / "u.item").is_file():
            return _load_100k(candidate)
        if (candidate / "ratings.dat").is_file() or (candidate / "movies.dat").is_file():
            return _load_1m(candidate)
    raise FileNotFoundError(
        f"No MovieLens files in {str(root)!r}: expected {', '.join(_FILES_100K)} "
        f"(MovieLens-100K) or {', '.join(_FILES_1M)} (MovieLens-1M), here or "
        "in an ml-100k/ or ml-1m/ subfolder."
    )


def _require(folder, names):
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"MovieLens folder {str(folder)!r} lacks {', '.join(missing)}; "
            f"expected all of {', '.join(names)}."
        )


def _read(file, sep, columns, encoding="latin-1"):
    """Reads a headerless delimited file, checking its column count."""
    try:
        frame = pd.read_csv(
            file,
            sep=sep,
            header=None,
            encoding=encoding,
            engine="python" if len(sep) > 1 else "c",
            dtype=str,
            keep_default_na=False,
            quoting=3,
        )
    except pd.errors.EmptyDataError:
        raise ValueError(f"MovieLens file {str(file)!r} is empty.") from None
    except pd.errors.ParserError as error:  # a row with more fields than the first
        first = str(error).strip().splitlines()[0]
        raise ValueError(
            f"MovieLens file {str(file)!r} is not a {len(columns)}-column "
            f"({', '.join(columns)}) table: {first}"
        ) from None
    if frame.shape[1] < len(columns):
        raise ValueError(
            f"MovieLens file {str(file)!r} has {frame.shape[1]} columns, "
            f"expected {len(columns)} ({', '.join(columns)})."
        )
    frame = frame.iloc[:, : len(columns)]
    frame.columns = list(columns)
    return frame


def _to_int(frame, column, file):
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 1
        raise ValueError(
            f"MovieLens file {str(file)!r}, line {line}: column `{column}` "
            f"holds {frame[column].iloc[line - 1]!r}, expected an integer "
            f"({int(bad.sum())} such rows)."
        )
    return values.astype(np.int64)


def _ratings_frame(frame, file):
    out = pd.DataFrame(
        {
            "user": _to_int(frame, "user", file),
            "item": _to_int(frame, "item", file),
            "rating": _to_int(frame, "rating", file).astype(np.float32),
            "timestamp": _to_int(frame, "timestamp", file),
        }
    )
    repeated = out.duplicated(["user", "item"], keep="first").to_numpy()
    if repeated.any():
        # A user who rates an item twice could have it in both the support
        # and the query set of their task.
        line = int(np.flatnonzero(repeated)[0]) + 1
        raise ValueError(
            f"MovieLens file {str(file)!r}, line {line}: user {out['user'].iloc[line - 1]} "
            f"rates item {out['item'].iloc[line - 1]} again ({int(repeated.sum())} repeated "
            "(user, item) pairs); keep one rating per user and item."
        )
    return out


def _year(text):
    match = _YEAR.search(str(text))
    return int(match.group(1)) if match else 0


def _load_100k(folder):
    _require(folder, _FILES_100K)
    ratings = _ratings_frame(
        _read(folder / "u.data", "\t", ("user", "item", "rating", "timestamp")),
        folder / "u.data",
    )
    genre_frame = _read(folder / "u.genre", "|", ("name", "index"))
    genre_frame = genre_frame[genre_frame["name"].str.len() > 0]
    genres = list(genre_frame["name"])
    occupations = [
        line.strip()
        for line in (folder / "u.occupation").read_text(encoding="latin-1").splitlines()
        if line.strip()
    ]
    item_cols = ("item", "title", "release", "video", "url") + tuple(genres)
    raw = _read(folder / "u.item", "|", item_cols)
    items = pd.DataFrame(
        {
            "item": _to_int(raw, "item", folder / "u.item"),
            "title": raw["title"],
            "year": [_year(r) or _year(t) for r, t in zip(raw["release"], raw["title"])],
        }
    )
    for genre in genres:
        items[genre] = _to_int(raw, genre, folder / "u.item").astype(np.int8)
    raw_users = _read(folder / "u.user", "|", ("user", "age", "gender", "occupation", "zip"))
    users = pd.DataFrame(
        {
            "user": _to_int(raw_users, "user", folder / "u.user"),
            "age": _to_int(raw_users, "age", folder / "u.user"),
            "gender": raw_users["gender"].str.upper(),
            "occupation": raw_users["occupation"],
        }
    )
    return MovieLens("ml-100k", ratings, users, items, genres, occupations, str(folder))


def _load_1m(folder):
    _require(folder, _FILES_1M)
    ratings = _ratings_frame(
        _read(folder / "ratings.dat", "::", ("user", "item", "rating", "timestamp")),
        folder / "ratings.dat",
    )
    raw = _read(folder / "movies.dat", "::", ("item", "title", "genres"))
    genres = list(ML1M_GENRES)
    items = pd.DataFrame(
        {
            "item": _to_int(raw, "item", folder / "movies.dat"),
            "title": raw["title"],
            "year": [_year(t[-6:]) for t in raw["title"]],
        }
    )
    split = raw["genres"].str.split("|")
    for genre in genres:
        items[genre] = split.apply(lambda names, g=genre: int(g in names)).astype(np.int8)
    raw_users = _read(folder / "users.dat", "::", ("user", "gender", "age", "occupation", "zip"))
    codes = _to_int(raw_users, "occupation", folder / "users.dat")
    if ((codes < 0) | (codes >= len(ML1M_OCCUPATIONS))).any():
        raise ValueError(
            f"MovieLens file {str(folder / 'users.dat')!r}: occupation codes "
            f"must lie in 0..{len(ML1M_OCCUPATIONS) - 1}."
        )
    users = pd.DataFrame(
        {
            "user": _to_int(raw_users, "user", folder / "users.dat"),
            "age": _to_int(raw_users, "age", folder / "users.dat"),
            "gender": raw_users["gender"].str.upper(),
            "occupation": [ML1M_OCCUPATIONS[c] for c in codes],
        }
    )
    return MovieLens("ml-1m", ratings, users, items, genres, list(ML1M_OCCUPATIONS), str(folder))


def load_movielens_tfds(data_dir=None, download=True):
    """Reads `movielens/100k-ratings` through TensorFlow Datasets.

    TFDS stores one row per rating with the user's and the movie's features.
    Ages come bucketed by TFDS (``bucketized_user_age``); the year is parsed
    from the title.

    Args:
        data_dir: the TFDS data folder (default TFDS's own).
        download: allow TFDS to download and prepare the data.

    Returns:
        A `MovieLens` object named ``"tfds:movielens/100k-ratings"``.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder("movielens/100k-ratings", data_dir=data_dir)
    if download:
        builder.download_and_prepare()
    dataset = builder.as_dataset(split="train")
    features = builder.info.features
    genre_names = list(features["movie_genres"].feature.names)
    occupation_names = list(features["user_occupation_label"].names)
    rows = {k: [] for k in ("user", "item", "rating", "timestamp", "age", "gender", "occ", "title", "genres")}
    for example in tfds.as_numpy(dataset):
        rows["user"].append(_text(example["user_id"]))
        rows["item"].append(_text(example["movie_id"]))
        rows["rating"].append(float(example["user_rating"]))
        rows["timestamp"].append(int(example["timestamp"]))
        rows["age"].append(int(float(example["bucketized_user_age"])))
        rows["gender"].append("M" if bool(example["user_gender"]) else "F")
        rows["occ"].append(occupation_names[int(example["user_occupation_label"])])
        rows["title"].append(_text(example["movie_title"]))
        rows["genres"].append(list(np.asarray(example["movie_genres"]).ravel()))
    rows["user"], rows["item"] = _integer_ids(rows["user"]), _integer_ids(rows["item"])
    ratings = pd.DataFrame(
        {
            "user": np.asarray(rows["user"], np.int64),
            "item": np.asarray(rows["item"], np.int64),
            "rating": np.asarray(rows["rating"], np.float32),
            "timestamp": np.asarray(rows["timestamp"], np.int64),
        }
    )
    users = (
        pd.DataFrame(
            {"user": ratings["user"], "age": rows["age"], "gender": rows["gender"], "occupation": rows["occ"]}
        )
        .drop_duplicates("user")
        .sort_values("user", kind="stable")
        .reset_index(drop=True)
    )
    item_rows = {}
    for item, title, genre_ids in zip(rows["item"], rows["title"], rows["genres"]):
        if item not in item_rows:
            flags = [0] * len(genre_names)
            for g in genre_ids:
                if 0 <= int(g) < len(genre_names):
                    flags[int(g)] = 1
            item_rows[item] = [item, title, _year(title[-6:])] + flags
    items = pd.DataFrame(
        sorted(item_rows.values()), columns=["item", "title", "year"] + genre_names
    )
    return MovieLens(
        "tfds:movielens/100k-ratings", ratings, users, items, genre_names, occupation_names
    )


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _integer_ids(ids):
    """TFDS stores ids as strings: numeric ones are kept, others numbered 1..n."""
    if all(i.strip().isdigit() for i in ids):
        return [int(i) for i in ids]
    codes, _ = pd.factorize(pd.Series(ids))
    return (codes + 1).tolist()


def write_tiny_movielens(folder, num_users=30, num_items=40, ratings_per_user=(20, 40), seed=0):
    """Writes a small synthetic MovieLens-100K-format folder (for tests).

    Ratings follow a planted structure (item quality plus a user taste for
    one genre), so models can learn from them. None of it is real data.

    Args:
        folder: where to write; an ``ml-100k`` subfolder is created.
        num_users, num_items: sizes.
        ratings_per_user: ``(low, high)`` ratings per user, inclusive.
        seed: the random seed.

    Returns:
        The path of the written ``ml-100k`` folder, as a string.
    """
    rng = np.random.default_rng(seed)
    out = pathlib.Path(folder) / "ml-100k"
    out.mkdir(parents=True, exist_ok=True)
    genres = ["unknown", "Action", "Comedy", "Drama"]
    occupations = ["artist", "engineer", "student", "other"]
    (out / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(genres)) + "\n")
    (out / "u.occupation").write_text("".join(o + "\n" for o in occupations))
    item_lines, item_genre, quality = [], [], rng.normal(0, 0.7, num_items + 1)
    for item in range(1, num_items + 1):
        g = int(rng.integers(1, len(genres)))
        flags = ["1" if j == g else "0" for j in range(len(genres))]
        item_genre.append(g)
        year = int(rng.integers(1950, 1999))
        item_lines.append(
            f"{item}|Film {item} é ({year})|01-Jan-{year}||http://x/{item}|" + "|".join(flags)
        )
    (out / "u.item").write_bytes(("\n".join(item_lines) + "\n").encode("latin-1"))
    user_lines, data_lines = [], []
    for user in range(1, num_users + 1):
        age = int(rng.integers(15, 70))
        user_lines.append(
            f"{user}|{age}|{'MF'[user % 2]}|{occupations[user % len(occupations)]}|{10000 + user}"
        )
        taste = int(rng.integers(1, len(genres)))
        count = int(rng.integers(ratings_per_user[0], ratings_per_user[1] + 1))
        chosen = rng.choice(np.arange(1, num_items + 1), size=min(count, num_items), replace=False)
        for k, item in enumerate(chosen):
            score = 3.3 + quality[item] + (1.2 if item_genre[item - 1] == taste else -0.4)
            rating = int(np.clip(np.rint(score + rng.normal(0, 0.5)), 1, 5))
            data_lines.append(f"{user}\t{item}\t{rating}\t{880000000 + 1000 * k + user}")
    (out / "u.user").write_text("\n".join(user_lines) + "\n")
    (out / "u.data").write_text("\n".join(data_lines) + "\n")
    return str(out)
