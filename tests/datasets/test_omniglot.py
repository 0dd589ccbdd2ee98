"""The Omniglot loader on tiny zips the tests write, and on TFDS mock data."""

import io
import os
import pathlib
import re
import zipfile

import numpy as np
import pytest
from PIL import Image

from fewshot.datasets.omniglot import Omniglot, load_omniglot, omniglot_splits


def _png(value, size=35):
    image = np.full((size, size), 255, np.uint8)  # white page
    image[5 : 5 + value % 20, 10:14] = 0  # a dark stroke whose length encodes the character
    buffer = io.BytesIO()
    Image.fromarray(image).convert("1").save(buffer, format="PNG")
    return buffer.getvalue()


def write_tiny_omniglot(folder, alphabets=(("Alpha", 3), ("Beta", 2)), evaluation=(("Gamma", 3),), drawings=12):
    """Writes images_background.zip and images_evaluation.zip in the canonical layout."""
    folder.mkdir(parents=True, exist_ok=True)
    char_id = 0
    for split, groups in (("images_background", alphabets), ("images_evaluation", evaluation)):
        with zipfile.ZipFile(folder / f"{split}.zip", "w") as archive:
            archive.writestr(f"{split}/", b"")
            for alphabet, count in groups:
                for c in range(1, count + 1):
                    char_id += 1
                    for d in range(1, drawings + 1):
                        name = f"{split}/{alphabet}/character{c:02d}/{char_id:04d}_{d:02d}.png"
                        archive.writestr(name, _png(char_id))
    return folder


def test_reads_zips_in_fixed_order_and_caches(tmp_path):
    data_dir = write_tiny_omniglot(tmp_path / "data")
    data = load_omniglot(data_dir, cache_dir=tmp_path / "cache")
    assert isinstance(data, Omniglot)
    assert data.images.shape == (8, 12, 28, 28) and data.images.dtype == np.uint8
    assert list(data.characters[:4]) == ["Alpha/character01", "Alpha/character02", "Alpha/character03", "Beta/character01"]
    assert data.alphabets[-1] == "Gamma"
    # Inverted: strokes bright on a dark page; longer strokes for later characters.
    assert data.images[0, 0].mean() < 60
    assert data.images[5, 0].sum() > data.images[0, 0].sum()
    cached = list((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 1
    again = load_omniglot(data_dir, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.images, data.images)


@pytest.mark.parametrize("setting", ["set", "empty"])
def test_the_default_cache_is_under_fewshot_cache_or_home(tmp_path, monkeypatch, setting):
    # The same rule as the molecule caches: an empty $FEWSHOT_CACHE means the
    # default folder (this loader used to cache into the working directory then).
    data_dir = write_tiny_omniglot(tmp_path / "data")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "shared") if setting == "set" else "")
    monkeypatch.chdir(tmp_path)
    load_omniglot(data_dir)
    root = tmp_path / "shared" if setting == "set" else tmp_path / "home" / ".cache" / "fewshot"
    assert len(list((root / "omniglot").glob("*.npz"))) == 1
    assert not list(tmp_path.glob("*.npz")) and not (tmp_path / "omniglot").exists()


def test_two_runs_decoding_at_once_both_get_the_cache(tmp_path, monkeypatch):
    # Session 22 started two cells together on an empty cache: both wrote the
    # same temporary file and the second rename failed. Here a second load
    # runs to completion between the first one's write and its rename.
    data_dir = write_tiny_omniglot(tmp_path / "data")
    cache = tmp_path / "cache"
    real_save = np.savez_compressed
    nested = []

    def save_then_let_another_run_finish(file, **arrays):
        real_save(file, **arrays)
        if not nested:
            nested.append(None)
            nested[0] = load_omniglot(data_dir, cache_dir=cache)

    monkeypatch.setattr(np, "savez_compressed", save_then_let_another_run_finish)
    first = load_omniglot(data_dir, cache_dir=cache)
    assert len(nested) == 1
    np.testing.assert_array_equal(first.images, nested[0].images)
    assert [p.name for p in cache.iterdir()] == [p.name for p in cache.glob("omniglot-28-*.npz")]
    assert len(list(cache.iterdir())) == 1
    monkeypatch.undo()
    np.testing.assert_array_equal(load_omniglot(data_dir, cache_dir=cache).images, first.images)


def test_a_failed_cache_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    data_dir = write_tiny_omniglot(tmp_path / "data")

    def full_disk(file, **arrays):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full_disk)
    with pytest.raises(OSError, match="No space left"):
        load_omniglot(data_dir, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_nearest_resampling_gives_binary_images_in_their_own_cache(tmp_path):
    data_dir = write_tiny_omniglot(tmp_path / "data")
    smooth = load_omniglot(data_dir, cache_dir=tmp_path / "cache")
    binary = load_omniglot(data_dir, cache_dir=tmp_path / "cache", resample="nearest")
    assert set(np.unique(binary.images)) == {0, 255}
    assert len(np.unique(smooth.images)) > 2  # antialiased edges have grey levels
    assert binary.images.shape == smooth.images.shape
    # Same strokes: the two agree where the antialiased image is clearly ink or page.
    sure = (smooth.images < 30) | (smooth.images > 225)
    assert ((binary.images > 127) == (smooth.images > 127))[sure].mean() > 0.98
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    again = load_omniglot(data_dir, cache_dir=tmp_path / "cache", resample="nearest")
    np.testing.assert_array_equal(again.images, binary.images)
    with pytest.raises(ValueError, match=r"argument `resample`.*Received: resample='bicubic'"):
        load_omniglot(data_dir, cache_dir=tmp_path / "cache", resample="bicubic")


def test_rotations_are_new_classes():
    images = np.random.default_rng(0).integers(0, 255, (3, 4, 28, 28)).astype(np.uint8)
    data = Omniglot(images, ["a"] * 3, ["a/1", "a/2", "a/3"], "test")
    x, y = data.arrays([0, 2], rotations=(0, 1, 2, 3))
    assert x.shape == (2 * 4 * 4, 28, 28, 1) and x.dtype == np.float32
    assert sorted(np.unique(y)) == list(range(8))
    np.testing.assert_allclose(x[y == 1][0, ..., 0], np.rot90(images[0, 0]) / 255.0)
    with pytest.raises(ValueError, match="Expected distinct quarter turns"):
        data.arrays([0], rotations=(5,))
    for bad in ([-1], [3]):
        with pytest.raises(ValueError, match=re.escape(f"Expected indices in [0, 2]. Received: {bad}")):
            data.arrays(bad)


def test_split_is_the_1200_423_character_split():
    train, val, test = omniglot_splits(validation_characters=0)
    assert (len(train), len(val), len(test)) == (1200, 0, 423)
    train, val, test = omniglot_splits()
    assert len(set(train) | set(val) | set(test)) == 1623
    assert train.max() < val.min() and val.max() < test.min() == 1200


def test_missing_and_bad_zips_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="images_background.zip"):
        load_omniglot(tmp_path, cache_dir=tmp_path / "cache")
    (tmp_path / "images_background.zip").write_bytes(b"not a zip")
    (tmp_path / "images_evaluation.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable zip"):
        load_omniglot(tmp_path, cache_dir=tmp_path / "cache")


def test_tfds_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=12):
        data = load_omniglot(use_tfds=True)
    assert data.images.ndim == 4 and data.images.shape[2:] == (28, 28)
    assert data.images.dtype == np.uint8 and data.source == "tfds:omniglot"
    assert len(data.characters) == data.images.shape[0] == len(data.alphabets)


def test_repeated_or_fractional_characters_are_refused():
    images = np.zeros((3, 2, 28, 28), np.uint8)
    data = Omniglot(images, ["a"] * 3, ["a/1", "a/2", "a/3"], "test")
    with pytest.raises(ValueError, match="indices repeat, which would make one character two classes"):
        data.arrays([0, 0])
    with pytest.raises(ValueError, match="Expected a 1-D sequence of integer indices"):
        data.arrays([1.7])
    with pytest.raises(ValueError, match="Expected distinct quarter turns"):
        data.arrays([0], rotations=(0, 0))


REAL_OMNIGLOT = pathlib.Path(os.environ.get("FEWSHOT_OMNIGLOT_DIR", "/work/shared/data/omniglot"))


@pytest.mark.slow
@pytest.mark.skipif(
    not (REAL_OMNIGLOT / "images_evaluation.zip").is_file(),
    reason="real Omniglot zips not present (set FEWSHOT_OMNIGLOT_DIR)",
)
def test_real_test_split_is_vinyals_test_characters(tmp_path):
    # Vinyals et al.'s test characters (the split Snell et al. and most papers use):
    # Gurmukhi characters 42-45 and every character of twelve evaluation alphabets.
    vinyals_alphabets = {
        "Kannada", "Keble", "Malayalam", "Manipuri", "Mongolian", "Old_Church_Slavonic_(Cyrillic)",
        "Oriya", "Syriac_(Serto)", "Sylheti", "Tengwar", "Tibetan", "ULOG",
    }
    data = load_omniglot(REAL_OMNIGLOT)
    train, validation, test = omniglot_splits(data.num_characters)
    names = lambda idx: {(data.alphabets[i], data.characters[i].rpartition("/")[2]) for i in idx}  # noqa: E731
    expected = {(a, c) for a, c in names(range(data.num_characters)) if a in vinyals_alphabets}
    expected |= {("Gurmukhi", f"character{k}") for k in (42, 43, 44, 45)}
    assert len(expected) == 423
    assert names(test) == expected
    assert names(train) | names(validation) == names(range(data.num_characters)) - expected
