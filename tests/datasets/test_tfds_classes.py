"""`load_tfds_classes` on TFDS mock data (never the network)."""

import numpy as np
import pytest

from fewshot.datasets import load_tfds_classes
from fewshot.episodes import EpisodeSampler

tfds = pytest.importorskip("tensorflow_datasets")


def _raw(name, split, key="image", label="label", num_examples=40):
    """The mock split as TFDS itself returns it: [(image, label)] in order."""
    with tfds.testing.mock_data(num_examples=num_examples):
        dataset = tfds.load(name, split=split)
        return [(e[key], e[label]) for e in tfds.as_numpy(dataset)]


def test_examples_are_grouped_by_label_in_order_and_scaled():
    raw = _raw("mnist", "train")
    with tfds.testing.mock_data(num_examples=40):
        store = load_tfds_classes("mnist", split="train")
    assert sorted(store) == sorted({int(label) for _, label in raw})
    for label, images in store.items():
        expected = np.stack([x for x, y in raw if y == label]).astype(np.float32) / 255.0
        np.testing.assert_allclose(images, expected)
    assert sum(len(v) for v in store.values()) == 40


def test_max_per_class_keeps_the_first_examples():
    raw = _raw("mnist", "train")
    with tfds.testing.mock_data(num_examples=40):
        store = load_tfds_classes("mnist", split="train", max_per_class=2)
    for label, images in store.items():
        first = [x for x, y in raw if y == label][:2]
        np.testing.assert_allclose(images, np.stack(first) / 255.0)


def test_resize_and_channels():
    with tfds.testing.mock_data(num_examples=20):
        gray = load_tfds_classes("cifar10", split="test", image_size=(16, 12), channels=1)
        rgb = load_tfds_classes("mnist", split="test", channels=3)
    first = next(iter(gray.values()))
    assert first.shape[1:] == (16, 12, 1) and 0.0 <= first.min() and first.max() <= 1.0
    digits = next(iter(rgb.values()))
    assert digits.shape[1:] == (28, 28, 3)
    np.testing.assert_array_equal(digits[..., 0], digits[..., 2])


def test_images_of_many_sizes_need_image_size():
    with tfds.testing.mock_data(num_examples=10):
        with pytest.raises(ValueError, match=r"differ in size.*pass image_size=\(height, width\)"):
            load_tfds_classes("caltech_birds2010")
        store = load_tfds_classes("caltech_birds2010", image_size=(20, 20))
    assert all(v.shape[1:] == (20, 20, 3) for v in store.values())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"feature_key": "img"}, r"has no feature 'img'. Its features: \['id', 'image', 'label'\]"),
        ({"label_key": "image"}, r"is not one label per example.*Received: label_key='image'"),
        ({"feature_key": "id"}, r"is string, not images or numbers"),
        ({"channels": 2}, r"Received: channels=2"),
        ({"max_per_class": 0}, r"`max_per_class`. Expected a positive integer. Received: max_per_class=0"),
        ({"image_size": "28"}, r"Received: image_size='28'"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with tfds.testing.mock_data(num_examples=5):
        with pytest.raises(ValueError, match=match):
            load_tfds_classes("cifar10", **kwargs)


def test_a_dataset_that_cannot_be_loaded_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"could not load 'no_such_dataset_xyz'.*DatasetNotFoundError"):
        load_tfds_classes("no_such_dataset_xyz")
    with pytest.raises(ValueError, match=r"download=False: a prepared copy must be in `data_dir`"):
        load_tfds_classes("mnist", data_dir=str(tmp_path), download=False)


def test_a_store_feeds_the_episode_sampler():
    with tfds.testing.mock_data(num_examples=60):
        store = load_tfds_classes("mnist", split="train", max_per_class=3)
    store = {label: images for label, images in store.items() if len(images) == 3}
    sampler = EpisodeSampler.from_classes(store, ways=2, shots=1, queries=2)
    batch = sampler.sample(num_tasks=3, seed=0)
    assert tuple(batch["support_x"].shape) == (3, 2, 28, 28, 1)
    assert tuple(batch["query_y"].shape) == (3, 4)
