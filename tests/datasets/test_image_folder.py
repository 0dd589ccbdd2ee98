"""`load_image_folder` on small folders of images the tests write."""

import numpy as np
import pytest
from PIL import Image

from fewshot.datasets import load_image_folder
from fewshot.episodes import EpisodeSampler

# Each class is drawn in its own gray level, so a loaded pixel says its class.
LEVELS = {"alpha": 40, "beta": 120, "gamma": 200}


def _write(folder, level, count=4, size=(30, 20), fmt="PNG", mode="L"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        color = level if mode == "L" else (level, 0, 255 - level)
        Image.new(mode, size[::-1], color).save(folder / f"{i}.{fmt.lower()}", format=fmt)


@pytest.fixture
def glyphs(tmp_path):
    root = tmp_path / "glyphs"
    for name, level in LEVELS.items():
        _write(root / name, level)
    return root


def test_classes_are_the_folders_and_pixels_are_scaled(glyphs):
    store = load_image_folder(glyphs, image_size=(12, 10))
    assert list(store) == sorted(LEVELS)
    for name, level in LEVELS.items():
        images = store[name]
        assert images.shape == (4, 12, 10, 1) and images.dtype == np.float32
        np.testing.assert_allclose(images, level / 255.0, atol=1e-6)


def test_rgb_keeps_three_channels_and_grayscale_mixes_them(tmp_path):
    _write(tmp_path / "red" , 200, count=2, mode="RGB", fmt="JPEG")
    _write(tmp_path / "blue", 30, count=2, mode="RGB", fmt="BMP")
    rgb = load_image_folder(tmp_path, image_size=(8, 8), channels=3)
    assert rgb["blue"].shape == (2, 8, 8, 3)
    np.testing.assert_allclose(rgb["blue"][0, 0, 0], np.array([30, 0, 225]) / 255.0, atol=0.01)
    gray = load_image_folder(tmp_path, image_size=(8, 8), channels=1)
    assert gray["red"].shape == (2, 8, 8, 1)
    # Pillow's L = (299 R + 587 G + 114 B) / 1000
    np.testing.assert_allclose(gray["red"][0, 0, 0, 0], (299 * 200 + 114 * 55) / 1000 / 255, atol=0.01)


def test_nested_folders_count_and_other_files_are_passed_over(glyphs):
    _write(glyphs / "alpha" / "more", LEVELS["alpha"], count=2)
    (glyphs / "alpha" / "notes.txt").write_text("not an image")
    (glyphs / "beta" / ".hidden.png").write_bytes(b"junk")
    (glyphs / ".cache").mkdir()
    _write(glyphs / ".cache", 0, count=1)
    _write(glyphs / "empty", 0, count=0)
    Image.new("L", (5, 5), 0).save(glyphs / "loose.png")  # not in a class folder
    store = load_image_folder(glyphs, image_size=(6, 6))
    assert list(store) == ["alpha", "beta", "gamma"]
    assert len(store["alpha"]) == 6 and len(store["beta"]) == 4


def test_max_per_class_reads_the_first_images_only(glyphs):
    (glyphs / "beta" / "9.png").write_text("broken, and after 0.png-3.png in sorted order")
    with pytest.raises(ValueError, match="beta/9.png"):
        load_image_folder(glyphs)
    store = load_image_folder(glyphs, max_per_class=2)  # never reaches 9.png
    assert {name: len(images) for name, images in store.items()} == {"alpha": 2, "beta": 2, "gamma": 2}
    with pytest.raises(ValueError, match="Received: max_per_class=0"):
        load_image_folder(glyphs, max_per_class=0)


def test_a_file_that_is_not_the_image_it_claims_is_named(glyphs):
    (glyphs / "beta" / "fake.png").write_text("name,value\nx,1\n")
    (glyphs / "gamma" / "empty.jpg").write_bytes(b"")
    with pytest.raises(ValueError) as error:
        load_image_folder(glyphs)
    message = str(error.value)
    assert "2 image file(s)" in message and "on_invalid='skip'" in message
    assert "beta/fake.png" in message and "is not an image" in message
    assert "gamma/empty.jpg" in message
    with pytest.warns(UserWarning, match=r"left out 2 unreadable file\(s\): beta/fake.png"):
        store = load_image_folder(glyphs, on_invalid="skip")
    assert len(store["beta"]) == 4 and len(store["gamma"]) == 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"image_size": (28,)}, r"`image_size`.*Received: image_size=\(28,\)"),
        ({"image_size": (0, 28)}, r"two positive integers. Received: image_size=\(0, 28\)"),
        ({"channels": 2}, r"`channels`.*Received: channels=2"),
        ({"on_invalid": "drop"}, r"`on_invalid`.*Received: on_invalid='drop'"),
    ],
)
def test_bad_arguments_are_named(glyphs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_image_folder(glyphs, **kwargs)


def test_missing_or_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="it does not exist"):
        load_image_folder(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="it is not a folder"):
        load_image_folder(tmp_path / "file.png")
    (tmp_path / "only_text").mkdir()
    (tmp_path / "only_text" / "a.txt").write_text("hi")
    with pytest.raises(ValueError, match="Found no class folder with images"):
        load_image_folder(tmp_path)


def test_episodes_from_a_folder_keep_each_class_together(glyphs):
    store = load_image_folder(glyphs, image_size=(8, 8))
    sampler = EpisodeSampler.from_classes(store, ways=2, shots=1, queries=3)
    batch = sampler.sample(num_tasks=6, seed=1)
    support = batch["support_x"].numpy()[..., 0, 0, 0]  # [T, N]: one pixel per example
    query = batch["query_x"].numpy()[..., 0, 0, 0]
    labels = batch["query_y"].numpy()
    for t in range(6):
        # every query shows the gray level of the support example of its label
        np.testing.assert_allclose(query[t], support[t][labels[t]], atol=1e-6)
        assert len(set(np.round(support[t] * 255))) == 2
