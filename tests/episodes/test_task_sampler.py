"""`TaskSampler`: K-shot regression episodes from rows grouped by a task id."""

import keras
import numpy as np
import pandas as pd
import pytest

import fewshot
from fewshot.episodes import TaskSampler

# Row i has input i, so an episode's inputs say which rows it drew.
SIZES = {"a": 12, "b": 7, "c": 30}


def _table():
    tasks = np.concatenate([[name] * n for name, n in SIZES.items()])
    x = np.arange(len(tasks), dtype=np.float32)[:, None]
    y = np.stack([x[:, 0] * 2, -x[:, 0]], axis=1)  # two targets per row
    return x, y, tasks


def test_each_episode_is_distinct_rows_of_one_task_with_their_targets():
    x, y, tasks = _table()
    sampler = TaskSampler(x, y, tasks, shots=3, queries=4)
    batch = {k: v.numpy() for k, v in sampler.sample(num_tasks=50, seed=1).items()}
    assert batch["support_x"].shape == (50, 3, 1) and batch["query_y"].shape == (50, 4, 2)
    seen = set()
    for t in range(50):
        rows = np.concatenate([batch["support_x"][t, :, 0], batch["query_x"][t, :, 0]]).astype(int)
        assert len(set(rows)) == 7  # support and query: distinct rows, disjoint
        assert len(set(tasks[rows])) == 1  # all of one task
        seen.add(tasks[rows][0])
        targets = np.concatenate([batch["support_y"][t], batch["query_y"][t]])
        np.testing.assert_array_equal(targets, y[rows])
    assert seen == set(SIZES)  # every task is drawn, the smallest (7 = K + Q rows) too


def test_same_seed_same_batch_other_seed_other_batch():
    sampler = TaskSampler(*_table(), shots=2, queries=2)
    first, again, other = (sampler.sample(8, seed=s)["support_x"].numpy() for s in (3, 3, 4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_maml_meta_trains_on_a_task_table():
    # Each task is a line with its own slope; the query loss after one inner step must fall.
    rng = np.random.default_rng(0)
    slopes = rng.uniform(-2, 2, 40)
    tasks = np.repeat(np.arange(40), 20)
    x = rng.uniform(-1, 1, (800, 1)).astype(np.float32)
    y = slopes[tasks] * x[:, 0]
    sampler = TaskSampler(x, y, tasks, shots=5, queries=10)
    keras.utils.set_random_seed(0)
    maml = fewshot.MAML(fewshot.models.mlp(input_shape=(1,), hidden=(32, 32)), inner_lr=0.1, inner_steps=1)
    maml.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    test = sampler.sample(64, seed=99)
    before = maml.evaluate(test, verbose=0, return_dict=True)["loss"]
    maml.fit(sampler.stream(meta_batch_size=16, batches_per_epoch=50, seed=0), epochs=3, verbose=0)
    after = maml.evaluate(test, verbose=0, return_dict=True)["loss"]
    assert after < 0.5 * before


def test_from_frame_reads_a_csv_table(tmp_path):
    path = tmp_path / "sites.csv"
    pd.DataFrame({
        "site": ["north"] * 6 + ["south"] * 5, "hour": range(11), "temp": np.linspace(0, 1, 11),
        "note": ["ok"] * 11, "load": np.arange(11) * 1.5,
    }).to_csv(path, index=False)
    sampler = TaskSampler.from_frame(pd.read_csv(path), task="site", target="load", shots=2, queries=3)
    assert list(sampler.tasks) == ["north", "south"]
    assert sampler.feature_columns == ["hour", "temp"] and sampler.target_columns == ["load"]
    batch = sampler.sample(6, seed=0)
    hours, loads = batch["support_x"].numpy()[..., 0], batch["support_y"].numpy()[..., 0]
    np.testing.assert_allclose(loads, hours * 1.5)


@pytest.mark.parametrize(
    "change, kwargs, message",
    [
        (None, {"task": "city"}, "The table has no column 'city'. Its columns: ['site', 'x', 'load']"),
        ("text", {}, "Column 'load' must hold numbers; rows [2] do not (e.g. 'n/a')"),
        (None, {"features": ["site"]}, "Column 'site' must hold numbers; rows [0, 1, 2, 3, 4] ..."),
    ],
)
def test_from_frame_names_the_column_and_rows(change, kwargs, message):
    frame = pd.DataFrame({"site": ["a"] * 5 + ["b"] * 5, "x": range(10), "load": np.arange(10.0)})
    if change == "text":
        frame["load"] = frame["load"].astype(object)
        frame.loc[2, "load"] = "n/a"
    arguments = {"task": "site", "target": "load", "shots": 2, "queries": 2, **kwargs}
    with pytest.raises(ValueError) as error:
        TaskSampler.from_frame(frame, **arguments)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda x, y, t: (x, y, t[:-1]), r"one entry per row.*tasks.shape=\(48,\)"),
        (lambda x, y, t: (x, np.where(np.arange(49)[:, None] == 3, np.nan, y), t), r"`y`: it holds NaN"),
        (lambda x, y, t: (x, y, np.where(np.arange(49) == 0, None, t).astype(object)), r"missing task ids"),
        (lambda x, y, t: (np.full(x.shape, "one", object), y, t), r"`x`. Expected numbers"),
    ],
)
def test_bad_tables_are_named(mutate, match):
    with pytest.raises(ValueError, match=match):
        TaskSampler(*mutate(*_table()), shots=2, queries=2)


def test_tasks_too_small_for_the_episode_are_listed():
    with pytest.raises(ValueError, match=r"2 of 3 tasks have fewer than shots \+ queries = 13 rows \(a, b; "
                                         r"the smallest has 7\)"):
        TaskSampler(*_table(), shots=3, queries=10)
