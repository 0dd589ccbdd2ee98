import numpy as np
import pytest

from fewshot.datasets import load_movielens
from fewshot.datasets.movielens import write_tiny_movielens
from fewshot.datasets.user_tasks import RatingFeatures, episode_stream, user_tasks


@pytest.fixture
def data(tmp_path):
    return load_movielens(write_tiny_movielens(tmp_path, num_users=30, num_items=40))


def test_query_is_the_last_ratings_by_time_ties_by_item(tmp_path):
    folder = write_tiny_movielens(tmp_path, num_users=2, num_items=20, ratings_per_user=(14, 14))
    path = tmp_path / "ml-100k" / "u.data"
    # User 1: 14 ratings; the last three share a timestamp and must sort by item id.
    rows = [f"1\t{i}\t{1 + i % 5}\t{1000 + i}" for i in range(1, 12)]
    rows += [f"1\t{i}\t3\t5000" for i in (14, 12, 13)]
    rows += [f"2\t{i}\t4\t{2000 - i}" for i in range(1, 15)]
    path.write_text("\n".join(rows) + "\n")
    tasks = user_tasks(load_movielens(folder), min_ratings=13, max_ratings=100, query_size=10)
    assert tasks.users.tolist() == [1, 2]
    assert tasks.query_items[0].tolist() == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    assert tasks.support_items[0].tolist() == [1, 2, 3, 4]
    assert tasks.query_items[1].tolist() == list(range(10, 0, -1))  # later = smaller id here
    assert tasks.support_x[0].shape == (4, 5 + 4)
    assert tasks.query_y[0][0] == 1 + 5 % 5


def test_eligibility_and_split_are_disjoint_and_seeded(data):
    counts = data.ratings.groupby("user").size()
    tasks = user_tasks(data, min_ratings=25, max_ratings=35)
    assert set(tasks.users) == set(counts[(counts >= 25) & (counts <= 35)].index)
    train, val, test = tasks.split(seed=3)
    groups = [set(t.users) for t in (train, val, test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert set().union(*groups) == set(tasks.users)
    again = tasks.split(seed=3)
    assert [g.users.tolist() for g in again] == [g.users.tolist() for g in (train, val, test)]


def test_features_encode_user_and_item_without_user_id(data):
    features = RatingFeatures.from_movielens(data)
    x = features.encode([3, 5], features.user_codes(30, "F", "student"))
    assert x.shape == (2, features.num_features)
    assert x[:, 0].tolist() == [3, 5]
    assert x[0, 1:4].tolist() == [3, 2, features.occupations.index("student") + 1]
    assert features.user_codes() == [0, 0, 0]
    with pytest.raises(ValueError, match="Expected one of \\['M', 'F'\\] or None. Received: gender='X'"):
        features.user_codes(gender="X")
    with pytest.raises(ValueError, match=r"2 ids are not in the items table: \[777, 999\]"):
        features.item_block([1, 999, 777])


def test_bad_arguments_are_named(data):
    with pytest.raises(ValueError, match="Received: query_size=0"):
        user_tasks(data, query_size=0)
    with pytest.raises(ValueError, match="min_ratings=5"):
        user_tasks(data, min_ratings=5)
    with pytest.raises(ValueError, match="No user has 200 to 300 ratings"):
        user_tasks(data, min_ratings=200, max_ratings=300)


def test_ratings_of_unknown_items_are_reported(data):
    data.ratings.loc[0, "item"] = 4242
    with pytest.raises(ValueError, match=r"1 ratings refer to 1 item ids missing .* \[4242\]"):
        user_tasks(data)


def test_episode_stream_draws_fixed_shapes_from_each_users_support(data):
    tasks = user_tasks(data)
    stream = episode_stream(tasks, meta_batch_size=4, support_size=6, batches_per_epoch=2, seed=1)
    batch = next(iter(stream.dataset))
    assert tuple(batch["support_x"].shape) == (4, 6, tasks.support_x[0].shape[1])
    assert tuple(batch["support_y"].shape) == (4, 6, 1)
    assert tuple(batch["query_y"].shape) == (4, 10, 1)
    # Every drawn support row is one of that user's support ratings.
    for t in range(4):
        qx = batch["query_x"][t].numpy()
        user = next(i for i, q in enumerate(tasks.query_x) if np.array_equal(q, qx))
        rows = {tuple(r) for r in tasks.support_x[user]}
        assert all(tuple(r) in rows for r in batch["support_x"][t].numpy())
    again = stream.take(1)[0]
    np.testing.assert_array_equal(again["support_x"], stream.take(1)[0]["support_x"])
    with pytest.raises(ValueError, match="Received: support_size=0"):
        episode_stream(tasks, support_size=0)


def _user_of(tasks, query_x):
    return next(i for i, q in enumerate(tasks.query_x) if np.array_equal(q, query_x))


def test_episode_stream_all_gives_each_users_whole_support_with_a_mask(data):
    tasks = user_tasks(data)
    width = int(tasks.support_sizes().max())
    batch = episode_stream(tasks, meta_batch_size=5, support_size="all", seed=2).take(1)[0]
    assert tuple(batch["support_x"].shape) == (5, width, tasks.support_x[0].shape[1])
    assert tuple(batch["support_y"].shape) == (5, width, 1)
    assert tuple(batch["support_weight"].shape) == (5, width)
    for t in range(5):
        user = _user_of(tasks, batch["query_x"][t])
        size = len(tasks.support_y[user])
        np.testing.assert_array_equal(batch["support_weight"][t], np.arange(width) < size)
        np.testing.assert_array_equal(batch["support_x"][t][:size], tasks.support_x[user])
        np.testing.assert_array_equal(batch["support_y"][t][:size, 0], tasks.support_y[user])
        assert not np.any(batch["support_x"][t][size:]) and not np.any(batch["support_y"][t][size:])


def test_episode_stream_range_draws_random_size_subsets(data):
    tasks = user_tasks(data)
    stream = episode_stream(tasks, meta_batch_size=8, support_size=[2, 12], seed=3)
    counts = []
    for batch in stream.take(3):
        assert tuple(batch["support_x"].shape[:2]) == (8, 12)
        assert tuple(batch["support_weight"].shape) == (8, 12)
        for t in range(8):
            user = _user_of(tasks, batch["query_x"][t])
            weight = batch["support_weight"][t]
            count = int(weight.sum())
            np.testing.assert_array_equal(weight, np.arange(12) < count)  # real rows first
            assert 2 <= count <= min(12, len(tasks.support_y[user]))
            rows = [tuple(r) for r in batch["support_x"][t][:count]]
            assert len(set(rows)) == count  # without replacement
            assert set(rows) <= {tuple(r) for r in tasks.support_x[user]}
            assert not np.any(batch["support_x"][t][count:])
            counts.append(count)
    assert len(set(counts)) > 3  # the size varies
    np.testing.assert_array_equal(stream.take(1)[0]["support_x"], stream.take(1)[0]["support_x"])


@pytest.mark.parametrize("bad", ["most", [0, 5], [5, 2], [1, 2, 3], 2.5, True])
def test_episode_stream_bad_support_size_is_named(data, bad):
    with pytest.raises(ValueError, match=f"Received: support_size={bad!r}".replace("[", r"\[")):
        episode_stream(user_tasks(data), support_size=bad)


@pytest.mark.parametrize("size", [0, -2, 4.0])
def test_meta_batch_size_is_checked(data, size):
    tasks = user_tasks(data, min_ratings=13, max_ratings=100)
    with pytest.raises(ValueError, match=f"argument `meta_batch_size`. Expected a positive integer. Received: meta_batch_size={size}"):
        episode_stream(tasks, meta_batch_size=size)


@pytest.mark.parametrize("age", [-5, 0, 0.5, 121, float("inf"), float("-inf"), "old", True])
def test_impossible_ages_are_errors_not_unknown(data, age):
    """-5 fell below the first age bucket and was encoded as an unknown age."""
    features = RatingFeatures.from_movielens(data)
    with pytest.raises(ValueError) as info:
        features.user_codes(age=age)
    assert str(info.value) == (
        "Invalid value received for argument `age`. Expected a number of years from 1 to 120, "
        f"or None (unknown). Received: age={age!r}"
    )


def test_possible_and_missing_ages(data):
    features = RatingFeatures.from_movielens(data)
    assert features.user_codes(age=None)[0] == features.user_codes(age=float("nan"))[0] == 0
    assert features.user_codes(age=np.float32("nan"))[0] == 0
    assert [features.user_codes(age=a)[0] for a in (1, 17.9, 18, np.int64(30), "56", 120)] == [1, 1, 2, 3, 7, 7]


def test_recommend_rejects_an_impossible_age_in_one_line(tmp_path, capsys):
    from fewshot import cli

    for age, shown in (("-5", "-5.0"), ("nan", "nan"), ("1000", "1000.0")):
        argv = ["recommend", "--model", "m", "--ratings", "r.csv", "--data-dir", str(tmp_path), "--age", age]
        assert cli.main(argv) == 2
        assert capsys.readouterr().err == (
            "fewshot recommend: error: Invalid value received for argument `--age`. Expected a number of "
            f"years from 1 to 120, or None (unknown). Received: --age={shown}\n"
        )
