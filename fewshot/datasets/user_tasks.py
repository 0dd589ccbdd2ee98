"""Personalisation tasks: one user is one task, rated items are examples.

Each rating becomes one example ``(x, y)``: ``x`` is a feature vector of the
user and the item, ``y`` the rating. The user's ratings sorted by time
(ties by item id) split into a support set (the earlier ones, what a new
user has told us) and a query set (the last ``query_size``, what we must
predict), the cold-start protocol of MeLU (Lee et al. KDD 2019).

The feature vector (`RatingFeatures`) holds no user id, so nothing learnt
is tied to a user seen in training: a new user is known only by age,
gender, occupation and the ratings in their support set. Items are known by
id, release year and genres (the "existing items" scenario).
"""

import dataclasses

import numpy as np
import tensorflow as tf

from fewshot.episodes.episode import SUPPORT_WEIGHT
from fewshot.episodes.splits import split_classes
from fewshot.episodes.stream import EpisodeStream
from fewshot.validation import check_int

# Age buckets of MovieLens-1M (lower bounds): <18, 18-24, 25-34, 35-44,
# 45-49, 50-55, 56+; index 0 means unknown.
AGE_BOUNDS = (1, 18, 25, 35, 45, 50, 56)
# Release-year buckets (lower bounds); index 0 means unknown.
YEAR_BOUNDS = (1900, 1940, 1950, 1960, 1970, 1980, 1990, 1995, 1997)
GENDERS = ("M", "F")
ID_COLUMNS = ("item", "age", "gender", "occupation", "year")


MAX_AGE = 120


def check_age(age, name="age", nan_is_unknown=True):
    """Returns `age` as a float number of years, or None when it is unknown.

    None and, with `nan_is_unknown`, NaN (a missing value in a table) mean
    unknown. Anything else must be a number from 1 to `MAX_AGE`: a
    negative, zero, infinite or absurd age is an error, not silently an
    unknown one (the age buckets start at 1, so -5 fell into "unknown").

    Raises:
        ValueError: "Invalid value received for argument `age`. Expected a
            number of years from 1 to 120, or None (unknown). Received: age=-5".
    """
    if age is None:
        return None
    try:
        value = None if isinstance(age, (bool, np.bool_)) else float(age)
    except (TypeError, ValueError):
        value = None
    if value is not None and np.isnan(value) and nan_is_unknown and not isinstance(age, str):
        return None
    if value is None or not 1 <= value <= MAX_AGE:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a number of years "
            f"from 1 to {MAX_AGE}, or None (unknown). Received: {name}={age!r}"
        )
    return value


@dataclasses.dataclass
class RatingFeatures:
    """Encodes (user, item) pairs of a `MovieLens` set as float vectors.

    The vector is ``[item, age, gender, occupation, year, genre_1..G]``: five
    integer codes (0 = unknown) stored as floats, then 0/1 genre flags. The
    encoding depends only on the data's files (item ids, the occupation and
    genre lists), so a saved model can be used again with the same folder.

    Attributes:
        num_items: item codes run 0..num_items-1 (the item id itself).
        occupations: occupation names; code = position + 1.
        genres: genre names, in flag order.
        items: the items table (``item, title, year`` + genre columns).
        users: the users table.
    """

    num_items: int
    occupations: list
    genres: list
    items: object
    users: object

    @classmethod
    def from_movielens(cls, data):
        """The encoder of a `fewshot.datasets.MovieLens` set."""
        return cls(
            num_items=int(data.items["item"].max()) + 1,
            occupations=list(data.occupations),
            genres=list(data.genres),
            items=data.items.set_index("item", drop=False),
            users=data.users.set_index("user", drop=False),
        )

    @property
    def num_features(self):
        return len(ID_COLUMNS) + len(self.genres)

    def vocabulary_sizes(self):
        """Sizes of the five code columns, for the embedding tables."""
        return {
            "item": self.num_items,
            "age": len(AGE_BOUNDS) + 1,
            "gender": len(GENDERS) + 1,
            "occupation": len(self.occupations) + 1,
            "year": len(YEAR_BOUNDS) + 1,
        }

    def user_codes(self, age=None, gender=None, occupation=None):
        """The ``[age, gender, occupation]`` codes of one user (0 = unknown).

        Raises:
            ValueError: the age is not a number of years from 1 to 120 (see
                `check_age`), or the gender or occupation is not one of the
                known ones.
        """
        age = check_age(age)
        age_code = 0
        if age is not None:
            age_code = int(np.searchsorted(AGE_BOUNDS, age, side="right"))
        gender_code = 0
        if gender not in (None, ""):
            if str(gender).upper() not in GENDERS:
                raise ValueError(
                    "Invalid value received for argument `gender`. Expected one "
                    f"of {list(GENDERS)} or None. Received: gender={gender!r}"
                )
            gender_code = GENDERS.index(str(gender).upper()) + 1
        occupation_code = 0
        if occupation not in (None, ""):
            if occupation not in self.occupations:
                raise ValueError(
                    "Invalid value received for argument `occupation`. Expected "
                    f"one of {self.occupations} or None. Received: "
                    f"occupation={occupation!r}"
                )
            occupation_code = self.occupations.index(occupation) + 1
        return [age_code, gender_code, occupation_code]

    def known_items(self, item_ids):
        """A bool mask: which item ids are in the items table."""
        return np.isin(np.asarray(item_ids, np.int64), self.items.index.to_numpy())

    def item_block(self, item_ids):
        """``[n, 2 + G]``: item code, year code and genre flags per item.

        Raises:
            ValueError: an item id is not in the items table (all such ids
                are listed).
        """
        item_ids = np.asarray(item_ids, np.int64)
        unknown = item_ids[~self.known_items(item_ids)]
        if len(unknown):
            raise ValueError(
                "Invalid value received for argument `item_ids`: "
                f"{len(unknown)} ids are not in the items table: "
                f"{sorted(set(unknown.tolist()))[:20]}"
            )
        rows = self.items.loc[item_ids]
        years = rows["year"].to_numpy()
        year_codes = np.where(years > 0, np.searchsorted(YEAR_BOUNDS, years, side="right"), 0)
        flags = rows[self.genres].to_numpy(np.float32)
        return np.column_stack([item_ids, year_codes, flags]).astype(np.float32)

    def encode(self, item_ids, user_codes):
        """Feature vectors ``[n, F]`` of one user's items.

        Args:
            item_ids: the items, a sequence of ids.
            user_codes: ``[age, gender, occupation]`` codes from `user_codes`.
        """
        block = self.item_block(item_ids)
        n = len(block)
        user = np.broadcast_to(np.asarray(user_codes, np.float32), (n, 3))
        return np.column_stack([block[:, :1], user, block[:, 1:]]).astype(np.float32)

    def codes_of_user(self, user_id):
        """The codes of a user of the users table (unknown user: all 0)."""
        if user_id not in self.users.index:
            return [0, 0, 0]
        row = self.users.loc[user_id]
        return self.user_codes(row["age"], row["gender"], row["occupation"])


@dataclasses.dataclass
class UserTasks:
    """Per-user support and query sets (one user = one task).

    Attributes:
        users: user ids, one per task.
        support_x, support_y: lists of ``[S_u, F]`` / ``[S_u]`` arrays,
            ratings in time order (S_u varies by user).
        query_x, query_y: lists of ``[Q, F]`` / ``[Q]`` arrays.
        support_items, query_items: the item ids of each set.
    """

    users: np.ndarray
    support_x: list
    support_y: list
    query_x: list
    query_y: list
    support_items: list
    query_items: list

    def __len__(self):
        return len(self.users)

    def subset(self, users):
        """The tasks of the given user ids, in that order."""
        position = {u: i for i, u in enumerate(self.users.tolist())}
        index = [position[u] for u in np.asarray(users).tolist()]
        pick = lambda values: [values[i] for i in index]  # noqa: E731
        return UserTasks(
            self.users[index],
            pick(self.support_x),
            pick(self.support_y),
            pick(self.query_x),
            pick(self.query_y),
            pick(self.support_items),
            pick(self.query_items),
        )

    def split(self, fractions=(0.7, 0.1, 0.2), seed=0):
        """Disjoint user splits (train, validation, test) fixed by `seed`."""
        return tuple(self.subset(group) for group in split_classes(self.users, fractions, seed))

    def concat(self, other):
        """The tasks of both sets (their users must differ)."""
        if set(self.users.tolist()) & set(other.users.tolist()):
            raise ValueError("Invalid value received for argument `other`: users overlap.")
        return UserTasks(
            np.concatenate([self.users, other.users]),
            *(getattr(self, f) + getattr(other, f) for f in (
                "support_x", "support_y", "query_x", "query_y", "support_items", "query_items")),
        )

    def support_sizes(self):
        return np.asarray([len(y) for y in self.support_y])

    def ratings(self, which="all"):
        """``(user, item, rating)`` arrays of the support, query or all sets."""
        parts = []
        for i, user in enumerate(self.users):
            if which in ("support", "all"):
                parts.append((user, self.support_items[i], self.support_y[i]))
            if which in ("query", "all"):
                parts.append((user, self.query_items[i], self.query_y[i]))
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        users = np.concatenate([np.full(len(items), u) for u, items, _ in parts])
        items = np.concatenate([items for _, items, _ in parts]).astype(np.int64)
        ratings = np.concatenate([r for _, _, r in parts]).astype(np.float32)
        return users, items, ratings

    def examples(self):
        """Every rating of every task as one ``(x [N, F], y [N])`` pair."""
        x = np.concatenate(self.support_x + self.query_x)
        y = np.concatenate(self.support_y + self.query_y)
        return x, y


def user_tasks(data, features=None, min_ratings=13, max_ratings=100, query_size=10):
    """Builds one task per eligible user of a `MovieLens` set.

    A user is eligible with ``min_ratings`` to ``max_ratings`` ratings. Their
    ratings are sorted by timestamp (ties by item id); the last
    ``query_size`` are the query set and the earlier ones the support set.

    Args:
        data: a `fewshot.datasets.MovieLens`.
        features: a `RatingFeatures` (default: built from `data`).
        min_ratings, max_ratings: the eligibility range, inclusive.
        query_size: ratings per query set.

    Returns:
        A `UserTasks`.

    Raises:
        ValueError: bad bounds, ratings of items missing from the items
            table (counted and listed), or no eligible user.

    Example:

    >>> import tempfile, fewshot
    >>> from fewshot.datasets.movielens import write_tiny_movielens
    >>> from fewshot.datasets.user_tasks import user_tasks
    >>> data = fewshot.datasets.load_movielens(write_tiny_movielens(tempfile.mkdtemp()))
    >>> tasks = user_tasks(data)
    >>> tasks.query_x[0].shape[0]
    10
    """
    check_int("query_size", query_size, minimum=1)
    if not (isinstance(min_ratings, int) and isinstance(max_ratings, int)) or not (
        query_size < min_ratings <= max_ratings
    ):
        raise ValueError(
            "Invalid values received for arguments `min_ratings` and "
            "`max_ratings`. Expected integers with query_size < min_ratings "
            f"<= max_ratings. Received: min_ratings={min_ratings!r}, "
            f"max_ratings={max_ratings!r}, query_size={query_size}"
        )
    features = features or RatingFeatures.from_movielens(data)
    ratings = data.ratings
    known = features.known_items(ratings["item"].to_numpy())
    if not known.all():
        bad = ratings.loc[~known, "item"].unique()
        raise ValueError(
            f"{int((~known).sum())} ratings refer to {len(bad)} item ids missing "
            f"from the items table, for example {sorted(bad.tolist())[:10]}."
        )
    counts = ratings.groupby("user").size()
    eligible = counts[(counts >= min_ratings) & (counts <= max_ratings)].index
    if len(eligible) == 0:
        raise ValueError(
            f"No user has {min_ratings} to {max_ratings} ratings "
            f"(users: {len(counts)}, ratings per user {counts.min()}..{counts.max()})."
        )
    chosen = ratings[ratings["user"].isin(eligible)].sort_values(
        ["user", "timestamp", "item"], kind="stable"
    )
    out = {k: [] for k in ("sx", "sy", "qx", "qy", "si", "qi")}
    users = []
    for user, group in chosen.groupby("user", sort=True):
        items = group["item"].to_numpy(np.int64)
        y = group["rating"].to_numpy(np.float32)
        x = features.encode(items, features.codes_of_user(user))
        cut = len(items) - query_size
        users.append(user)
        out["sx"].append(x[:cut])
        out["sy"].append(y[:cut])
        out["qx"].append(x[cut:])
        out["qy"].append(y[cut:])
        out["si"].append(items[:cut])
        out["qi"].append(items[cut:])
    return UserTasks(
        np.asarray(users, np.int64), out["sx"], out["sy"], out["qx"], out["qy"], out["si"], out["qi"]
    )


def episode_stream(tasks, meta_batch_size=32, support_size=10, batches_per_epoch=100, seed=0):
    """A seeded `EpisodeStream` of training episodes, one user per task.

    Support sets differ in size from user to user, but a meta-batch is a
    dense tensor. ``support_size`` says how an episode's support set is made:

    - an integer ``k``: ``k`` ratings drawn at random (without replacement)
      from the user's support set (users with fewer are sampled with
      repetition); every episode has exactly ``k`` support ratings.
    - ``"all"``: the user's whole support set, as a new user brings it at
      test time (MeLU's setting), padded to the largest support set.
    - ``[low, high]``: a random subset of the user's support set whose size
      is drawn uniformly from ``low`` to ``min(high, S_u)`` (all ``S_u`` if
      the user has fewer than ``low``), padded to ``high``.

    The last two add ``support_weight`` ``[T, W]`` to the episode (1 for a
    real rating, 0 for padding), which `fewshot.MAML` honours: the inner loop
    minimises the mean loss over the real ratings, as when a user is adapted
    alone. The user's whole query set is kept in every case.

    Args:
        tasks: the meta-training `UserTasks`.
        meta_batch_size: users per meta-batch (drawn uniformly).
        support_size: an integer, ``"all"`` or ``[low, high]`` (see above).
        batches_per_epoch: batches in one epoch of the stream.
        seed: the stream's seed.

    Returns:
        A `fewshot.episodes.EpisodeStream` of dicts with
        ``support_x [T, W, F]``, ``support_y [T, W, 1]``, ``query_x [T, Q, F]``,
        ``query_y [T, Q, 1]`` (``W`` the width above) and, for ``"all"`` or a
        range, ``support_weight [T, W]``.

    Raises:
        ValueError: a bad `support_size` or `meta_batch_size` (named, with the
            value received).

    Example:

    >>> import tempfile, fewshot
    >>> from fewshot.datasets.movielens import write_tiny_movielens
    >>> from fewshot.datasets.user_tasks import episode_stream, user_tasks
    >>> tasks = user_tasks(fewshot.datasets.load_movielens(write_tiny_movielens(tempfile.mkdtemp())))
    >>> batch = episode_stream(tasks, meta_batch_size=4, support_size=[1, 20]).take(1)[0]
    >>> tuple(batch["support_weight"].shape)
    (4, 20)
    """
    meta_batch_size = check_int("meta_batch_size", meta_batch_size, minimum=1)
    low, high = _support_range(support_size)
    query_sizes = {len(y) for y in tasks.query_y}
    if len(query_sizes) != 1:
        raise ValueError(f"Every task needs the same query size. Received sizes {sorted(query_sizes)}")
    sizes = tasks.support_sizes()
    width = int(sizes.max())
    num_features = tasks.support_x[0].shape[1]
    padded_x = np.zeros((len(tasks), width, num_features), np.float32)
    padded_y = np.zeros((len(tasks), width), np.float32)
    for i, (x, y) in enumerate(zip(tasks.support_x, tasks.support_y)):
        padded_x[i, : len(y)] = x
        padded_y[i, : len(y)] = y
    sx, sy = tf.constant(padded_x), tf.constant(padded_y)
    qx, qy = tf.constant(np.stack(tasks.query_x)), tf.constant(np.stack(tasks.query_y))
    lengths = tf.constant(sizes, tf.int32)
    num_users = len(tasks)
    # Support rows per episode: k (fixed), every user's whole set, or `high`.
    out_width = support_size if low is None else (width if support_size == "all" else high)

    def sample(seed_tensor):
        # Two seeds for a fixed size (the stream of earlier versions), three for a range.
        seeds = tf.random.experimental.stateless_split(seed_tensor, 2 if low is None else 3)
        users = tf.random.stateless_uniform(
            [meta_batch_size], seeds[0], maxval=num_users, dtype=tf.int32
        )
        length = tf.gather(lengths, users)
        episode = {
            "query_x": tf.gather(qx, users),
            "query_y": tf.gather(qy, users)[..., None],
        }
        if support_size == "all":
            count = length
            order = tf.broadcast_to(tf.range(width)[None, :], [meta_batch_size, width])
        else:
            # A random order of each user's real rows first, padding after.
            keys = tf.random.stateless_uniform([meta_batch_size, width], seeds[1])
            keys = tf.where(tf.range(width)[None, :] < length[:, None], keys, 2.0 + keys)
            order = tf.argsort(keys, axis=1)
            if width < out_width:
                order = tf.pad(order, [[0, 0], [0, out_width - width]])
            order = order[:, :out_width]
            if low is None:
                order = tf.math.floormod(order, length[:, None])
            else:
                top = tf.minimum(length, high)
                bottom = tf.minimum(length, low)
                draw = tf.random.stateless_uniform([meta_batch_size], seeds[2])
                span = tf.cast(top - bottom + 1, tf.float32)
                count = bottom + tf.minimum(tf.cast(draw * span, tf.int32), top - bottom)
        index = tf.stack([tf.broadcast_to(users[:, None], tf.shape(order)), order], axis=-1)
        support_x = tf.gather_nd(sx, index)
        support_y = tf.gather_nd(sy, index)
        if low is not None:
            weight = tf.cast(tf.range(out_width)[None, :] < count[:, None], tf.float32)
            # Padding rows hold zeros, so nothing of another rating leaks in.
            support_x = support_x * weight[..., None]
            support_y = support_y * weight
            episode[SUPPORT_WEIGHT] = weight
        episode["support_x"] = support_x
        episode["support_y"] = support_y[..., None]
        return episode

    return EpisodeStream(sample, batches_per_epoch, seed=seed)


def _support_range(support_size):
    """``(None, None)`` for a fixed size, else the ``(low, high)`` drawn from."""
    if support_size == "all":
        return 1, None
    if isinstance(support_size, (list, tuple)):
        low_high = list(support_size)
        if (
            len(low_high) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in low_high)
            and 1 <= low_high[0] <= low_high[1]
        ):
            return low_high[0], low_high[1]
    elif isinstance(support_size, int) and not isinstance(support_size, bool):
        check_int("support_size", support_size, minimum=1)
        return None, None
    raise ValueError(
        "Invalid value received for argument `support_size`. Expected a positive "
        "integer, 'all', or [low, high] with 1 <= low <= high. "
        f"Received: support_size={support_size!r}"
    )
