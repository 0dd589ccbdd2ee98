import numpy as np
import pytest

from fewshot.datasets.assays import AssaySampler, assay_scores, evaluate_assays, support_draws


def _assays(num=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num, 5)).astype("float32")
    labels = np.stack([(x[:, 0] > 0.3), (x[:, 1] > 0.0), (x[:, 2] > 0.5)], 1).astype("float32")
    labels[rng.random(labels.shape) < 0.1] = np.nan
    return x, labels


def test_episodes_are_balanced_and_labelled_from_one_assay():
    x, labels = _assays()
    sampler = AssaySampler(x, labels, tasks=[0, 1], shots=3, queries=4)
    batch = {k: v.numpy() for k, v in sampler.sample(num_tasks=6, seed=3).items()}
    assert batch["support_x"].shape == (6, 6, 5) and batch["query_x"].shape == (6, 8, 5)
    assert (batch["support_y"] == np.repeat([0, 1], 3)).all()
    assert (batch["query_y"] == np.repeat([0, 1], 4)).all()
    for t in range(6):
        rows = [np.flatnonzero((x == v).all(1))[0] for v in np.concatenate([batch["support_x"][t], batch["query_x"][t]])]
        assert len(set(rows)) == 14  # no molecule twice in an episode
        y = np.concatenate([batch["support_y"][t], batch["query_y"][t]])
        # Every label agrees with one of the two training assays.
        assert any((labels[rows, task] == y).all() for task in (0, 1))


def test_episodes_are_reproducible_by_seed():
    x, labels = _assays()
    sampler = AssaySampler(x, labels, tasks=[0, 1], shots=2, queries=2)
    a, b = sampler.sample(4, seed=1), sampler.sample(4, seed=1)
    np.testing.assert_array_equal(a["query_x"], b["query_x"])
    assert not np.array_equal(a["query_x"], sampler.sample(4, seed=2)["query_x"])


def test_too_few_actives_is_a_clear_error():
    x, labels = _assays()
    with pytest.raises(ValueError, match="shots \\+ queries = 40 of each are needed"):
        AssaySampler(x, labels, tasks=[2], shots=20, queries=20)
    with pytest.raises(ValueError, match="Received: shots=0"):
        AssaySampler(x, labels, tasks=[0], shots=0)


def test_support_draws_use_every_other_measured_molecule_as_query():
    _, labels = _assays()
    column = labels[:, 1]
    draws = support_draws(column, shots=4, draws=5, seed=0)
    assert len(draws) == 5
    for s_rows, s_y, q_rows, q_y in draws:
        assert (column[s_rows] == s_y).all() and (s_y == np.repeat([0, 1], 4)).all()
        assert not set(s_rows) & set(q_rows)
        assert len(s_rows) + len(q_rows) == int((~np.isnan(column)).sum())
        assert (column[q_rows] == q_y).all()


def test_scores_roc_auc_in_percent_and_delta_auprc():
    y = np.array([0, 0, 0, 1])
    assert assay_scores(y, [0.1, 0.2, 0.3, 0.9]) == (100.0, 0.75)
    auc, dauprc = assay_scores(y, [0.9, 0.2, 0.3, 0.1])
    assert auc == 0.0 and dauprc == pytest.approx(0.0)  # last of 4: AP = 1/4 = base rate
    with pytest.raises(ValueError, match="NaN or infinite"):
        assay_scores(y, [np.nan, 0, 0, 1])


def test_protocol_summary_is_the_mean_over_tasks_with_an_interval():
    x, labels = _assays()
    perfect = evaluate_assays(lambda sx, sy, qx: qx[:, 0], x, labels, [0], shots=2, draws=3)
    assert perfect["summary"]["roc_auc"] == (100.0, 0.0)
    result = evaluate_assays(lambda sx, sy, qx: -qx[:, 1], x, labels, [0, 1], shots=2, draws=4)
    assert len(result["roc_auc"][0]) == 4 and len(result["roc_auc"][1]) == 4
    mean, half = result["summary"]["roc_auc"]
    assert mean == pytest.approx((np.mean(result["roc_auc"][0]) + np.mean(result["roc_auc"][1])) / 2)
    assert half > 0
    assert np.mean(result["roc_auc"][1]) == 0.0  # anti-correlated score


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, y, t: (x[:5], y, t), r"one row per molecule. Received: features.shape=\(5, 5\), labels.shape=\(60, 3\)"),
        (lambda x, y, t: (np.where(np.arange(60)[:, None] == 3, np.nan, x), y, t), "NaN or infinite values. Received: 1 non-finite rows of 60"),
        (lambda x, y, t: (x, y[:, 0], t), r"Expected a 2-D array .* Received: labels.shape=\(60,\)"),
        (lambda x, y, t: (x, np.where(y == 1, 2.0, y), t), r"expected 1 \(active\), 0 .* Received values: \[2.0\]"),
        (lambda x, y, t: (x, y, [0, 3]), r"indices in \[0, 2\]. Received: tasks=\[0, 3\]"),
        (lambda x, y, t: (x, y, [-1]), r"Received: tasks=\[-1\]"),
        (lambda x, y, t: (x, y, ["NR-AR"]), r"Received: tasks=\['NR-AR'\]"),
        (lambda x, y, t: (x, y, []), r"Received: tasks=\[\]"),
    ],
)
def test_bad_assay_tables_are_named(change, message):
    features, labels, tasks = change(*_assays(), [0, 1])
    with pytest.raises(ValueError, match=message):
        AssaySampler(features, labels, tasks, shots=2, queries=2)
    with pytest.raises(ValueError, match=message):
        evaluate_assays(lambda sx, sy, qx: qx[:, 0], features, labels, tasks, shots=2, draws=2)


def test_bad_counts_are_named():
    x, labels = _assays()
    with pytest.raises(ValueError, match="Received: shots=0"):
        support_draws(labels[:, 0], shots=0, draws=2)
    with pytest.raises(ValueError, match="Received: draws=1.5"):
        support_draws(labels[:, 0], shots=2, draws=1.5)
    with pytest.raises(ValueError, match=r"one assay's labels \[num_molecules\]"):
        support_draws(labels, shots=2, draws=2)
    with pytest.raises(ValueError, match="Received: queries=0"):
        AssaySampler(x, labels, [0], shots=2, queries=0)


@pytest.mark.parametrize("num_tasks", [2.0, -1, 0])
def test_bad_batch_sizes_are_named(num_tasks):
    x, labels = _assays()
    sampler = AssaySampler(x, labels, tasks=[0, 1], shots=2, queries=2)
    with pytest.raises(ValueError, match=f"argument `num_tasks`. Expected a positive integer. Received: num_tasks={num_tasks}"):
        sampler.sample(num_tasks, seed=0)
    with pytest.raises(ValueError, match="argument `meta_batch_size`"):
        sampler.stream(meta_batch_size=num_tasks)
