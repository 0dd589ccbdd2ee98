import numpy as np
import pytest

from fewshot.episodes import Sinusoid, validate_episode


def test_shapes_and_ranges():
    family = Sinusoid(support_shots=5, query_shots=7)
    batch = validate_episode({k: v.numpy() for k, v in family.sample(8, seed=1).items()})
    assert batch["support_x"].shape == (8, 5, 1)
    assert batch["query_y"].shape == (8, 7, 1)
    assert batch["support_x"].min() >= -5 and batch["support_x"].max() <= 5
    amplitude, phase = family.sample_parameters(1000, seed=3)
    assert 0.1 <= amplitude.numpy().min() and amplitude.numpy().max() <= 5.0
    assert 0.0 <= phase.numpy().min() and phase.numpy().max() <= np.pi


def test_targets_follow_the_task_function():
    family = Sinusoid(amplitude_range=(2.0, 2.0), phase_range=(0.5, 0.5))
    batch = family.sample(3, seed=0)
    expected = 2.0 * np.sin(batch["support_x"].numpy() - 0.5)
    np.testing.assert_allclose(batch["support_y"].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_seeded_and_reproducible():
    family = Sinusoid()
    a, b, c = family.sample(4, seed=5), family.sample(4, seed=5), family.sample(4, seed=6)
    np.testing.assert_array_equal(a["query_y"].numpy(), b["query_y"].numpy())
    assert not np.allclose(a["query_y"].numpy(), c["query_y"].numpy())


def test_same_tasks_for_different_support_sizes():
    """The task parameters depend on the seed only, so K=5 and K=10 share tasks."""
    a = Sinusoid(support_shots=5).sample_parameters(10, seed=2)
    b = Sinusoid(support_shots=10).sample_parameters(10, seed=2)
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"amplitude_range": (5.0, 0.1)}, "Received: amplitude_range=(5.0, 0.1)"),
        ({"x_range": (0, float("nan"))}, "Invalid value received for argument `x_range`"),
        ({"support_shots": 0}, "Expected a positive integer. Received: support_shots=0"),
        ({"query_shots": 2.5}, "Received: query_shots=2.5"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Sinusoid(**kwargs)


def test_joint_dataset_pools_points():
    x, y = next(iter(Sinusoid().joint_dataset(batch_size=16, seed=0)))
    assert x.shape == (16, 1) and y.shape == (16, 1)


def test_numpy_numbers_are_accepted():
    family = Sinusoid(x_range=(np.float32(-5), np.float32(5)), support_shots=np.int64(4))
    assert family.x_range == (-5.0, 5.0)
    np.testing.assert_array_equal(
        family.sample(np.int64(2), np.int64(3))["query_y"], family.sample(2, 3)["query_y"]
    )
    with pytest.raises(ValueError, match="argument `seed`"):
        family.sample(2, 0.5)
