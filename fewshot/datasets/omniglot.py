"""Omniglot (Lake et al. 2015): 1623 handwritten characters, 20 drawings each.

Reads the canonical ``images_background.zip`` and ``images_evaluation.zip``
from a directory, or ``tfds.load("omniglot")`` when no directory is given.
Images are inverted (strokes are 1, background 0), resized to 28x28 with
antialiasing (``resample="lanczos"``, the default) or by nearest neighbour
(``resample="nearest"``: binary images, as Snell et al.'s loader produced
from the 1-bit PNGs), and cached as uint8 in an ``.npz`` under the cache directory
(default ``~/.cache/fewshot/omniglot``, or ``$FEWSHOT_CACHE/omniglot``), keyed
by the zips' size and modification time, so a second run does not decode the
32,460 PNGs again.

The split (`omniglot_splits`) is a 1200 / 423 character split as in Vinyals
et al. 2016 and Snell et al. 2017 (not necessarily their exact character
list; Finn et al. 2017 shuffle the characters with a fixed seed instead):
the 1623 characters in a fixed order
(the 30 background alphabets, then the 20 evaluation alphabets, alphabets
and characters sorted by name), the first 1200 for meta-training (the last
`validation_characters` of them held out for validation) and the remaining
423 for testing. Meta-training classes are augmented with rotations by 90,
180 and 270 degrees, each a new class (4 x 1200 = 4800 classes when no
validation is held out). The boundary falls inside the evaluation alphabet
Gurmukhi, so that one alphabet has characters on both sides; no character
is in two splits.
"""

import hashlib
import io
import os
import pathlib
import re
import zipfile

import numpy as np

from fewshot.datasets.cache_files import default_cache_dir, write_atomically

ZIP_NAMES = ("images_background.zip", "images_evaluation.zip")
IMAGE_SIZE = 28
# How the 105x105 drawings are brought to 28x28 (`load_omniglot`'s `resample`).
RESAMPLES = ("lanczos", "nearest")
NUM_CHARACTERS = 1623
TRAIN_CHARACTERS = 1200
_PNG = re.compile(r"^(images_background|images_evaluation)/([^/]+)/(character\d+)/([^/]+\.png)$")


class Omniglot:
    """Decoded Omniglot: images grouped by character.

    Attributes:
        images: uint8 ``[num_characters, drawings, 28, 28]``, strokes 255.
        alphabets: ``[num_characters]`` alphabet names.
        characters: ``[num_characters]`` names like ``"Greek/character03"``.
        source: where the data was read from.
    """

    def __init__(self, images, alphabets, characters, source):
        self.images = images
        self.alphabets = np.asarray(alphabets)
        self.characters = np.asarray(characters)
        self.source = source

    @property
    def num_characters(self):
        return int(self.images.shape[0])

    def arrays(self, character_indices, rotations=(0,)):
        """Float images ``[n, 28, 28, 1]`` in [0, 1] and class labels.

        Each (character, rotation) pair is one class, labelled
        ``0..len(character_indices) * len(rotations) - 1``.

        Args:
            character_indices: which characters (indices into `images`).
            rotations: quarter turns, a subset of ``(0, 1, 2, 3)``.
        """
        given = np.asarray(character_indices)
        if given.ndim != 1 or not (given.size == 0 or np.issubdtype(given.dtype, np.integer)):
            raise ValueError(
                "Invalid value received for argument `character_indices`. Expected a "
                f"1-D sequence of integer indices. Received: {given.dtype} array of shape "
                f"{given.shape}"
            )
        character_indices = given.astype(np.int64)
        if len(np.unique(character_indices)) != len(character_indices):
            raise ValueError(
                "Invalid value received for argument `character_indices`: indices "
                "repeat, which would make one character two classes. Received: "
                f"{len(character_indices)} indices, {len(np.unique(character_indices))} distinct"
            )
        outside = character_indices[(character_indices < 0) | (character_indices >= len(self.images))]
        if len(outside):
            raise ValueError(
                "Invalid value received for argument `character_indices`. Expected "
                f"indices in [0, {len(self.images) - 1}]. Received: {outside[:5].tolist()}"
            )
        rotations = tuple(rotations)
        if (not rotations or len(set(rotations)) != len(rotations)
                or any(r not in (0, 1, 2, 3) or isinstance(r, bool) for r in rotations)):
            raise ValueError(
                "Invalid value received for argument `rotations`. Expected "
                f"distinct quarter turns among (0, 1, 2, 3). Received: rotations={rotations!r}"
            )
        xs, ys = [], []
        base = self.images[character_indices]  # [c, d, 28, 28]
        for k, r in enumerate(rotations):
            xs.append(np.rot90(base, k=r, axes=(2, 3)))
            labels = np.arange(len(character_indices)) * len(rotations) + k
            ys.append(np.repeat(labels, base.shape[1]))
        x = np.concatenate([a.reshape(-1, IMAGE_SIZE, IMAGE_SIZE) for a in xs])
        y = np.concatenate(ys)
        order = np.argsort(y, kind="stable")
        return (x[order][..., None].astype("float32") / 255.0), y[order]


def omniglot_splits(num_characters=NUM_CHARACTERS, validation_characters=100, train_characters=TRAIN_CHARACTERS):
    """Character indices of the meta-train, validation and test splits.

    Args:
        num_characters: characters in the dataset (1623).
        validation_characters: the last characters of the first
            `train_characters` held out for validation (0 for none).
        train_characters: how many characters precede the test split.

    Returns:
        ``(train, validation, test)`` index arrays.

    Example:

    >>> from fewshot.datasets.omniglot import omniglot_splits
    >>> train, val, test = omniglot_splits()
    >>> len(train), len(val), len(test)
    (1100, 100, 423)
    """
    if not 0 <= validation_characters < train_characters < num_characters:
        raise ValueError(
            "Invalid split: expected 0 <= validation_characters < "
            "train_characters < num_characters. Received: "
            f"validation_characters={validation_characters}, "
            f"train_characters={train_characters}, num_characters={num_characters}"
        )
    cut = train_characters - validation_characters
    index = np.arange(num_characters)
    return index[:cut], index[cut:train_characters], index[train_characters:]


def load_omniglot(data_dir=None, cache_dir=None, use_tfds=None, resample="lanczos"):
    """Loads Omniglot from the canonical zips (or TFDS), decoding once.

    Args:
        data_dir: a folder holding ``images_background.zip`` and
            ``images_evaluation.zip``. Default: ``$FEWSHOT_OMNIGLOT_DIR`` if
            set; otherwise TFDS is used.
        cache_dir: where decoded arrays are cached; default
            ``$FEWSHOT_CACHE/omniglot`` or ``~/.cache/fewshot/omniglot``.
        use_tfds: force (True) or forbid (False) `tfds.load("omniglot")`.
        resample: how the 105x105 drawings become 28x28: ``"lanczos"``
            (antialiased grey levels) or ``"nearest"`` (binary strokes).

    Returns:
        An `Omniglot`.

    Raises:
        FileNotFoundError: `data_dir` lacks one of the zips.
        ValueError: a zip holds no Omniglot images or characters with
            different numbers of drawings.
    """
    if resample not in RESAMPLES:
        raise ValueError(
            "Invalid value received for argument `resample`. Expected one of "
            f"{list(RESAMPLES)}. Received: resample={resample!r}"
        )
    data_dir = data_dir or os.environ.get("FEWSHOT_OMNIGLOT_DIR")
    if use_tfds or (use_tfds is None and data_dir is None):
        return _load_tfds(resample)
    if data_dir is None:
        raise ValueError(
            "Invalid value received for argument `data_dir`: None with "
            "use_tfds=False. Give the folder holding images_background.zip "
            "and images_evaluation.zip."
        )
    folder = pathlib.Path(data_dir)
    paths = [folder / name for name in ZIP_NAMES]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Omniglot zips not found in {str(folder)!r}: missing {missing}. "
            "Expected images_background.zip and images_evaluation.zip (from "
            "github.com/brendenlake/omniglot, python/)."
        )
    cache = pathlib.Path(cache_dir) if cache_dir else default_cache_dir() / "omniglot"
    key = hashlib.sha256(
        "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths).encode()
    ).hexdigest()[:16]
    # The antialiased cache keeps its older name, so existing caches stay valid.
    kind = "" if resample == "lanczos" else f"{resample}-"
    cached = cache / f"omniglot-{IMAGE_SIZE}-{kind}{key}.npz"
    if cached.is_file():
        with np.load(cached) as data:
            return Omniglot(data["images"], data["alphabets"], data["characters"], str(folder))
    images, alphabets, characters = [], [], []
    for path in paths:
        a, b, c = _read_zip(path, resample)
        images += a
        alphabets += b
        characters += c
    counts = {len(x) for x in images}
    if len(counts) != 1:
        raise ValueError(
            f"The Omniglot zips in {str(folder)!r} hold characters with "
            f"different numbers of drawings ({sorted(counts)}); expected 20 each."
        )
    stacked = np.stack([np.stack(x) for x in images])
    cache.mkdir(parents=True, exist_ok=True)
    with write_atomically(cached) as f:
        np.savez_compressed(f, images=stacked, alphabets=np.array(alphabets), characters=np.array(characters))
    return Omniglot(stacked, alphabets, characters, str(folder))


def _read_zip(path, resample="lanczos"):
    """Decodes one zip: lists of per-character image lists, alphabet and character names."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{str(path)!r} is not a readable zip file: {error}") from None
    groups = {}
    with archive:
        for name in archive.namelist():
            match = _PNG.match(name)
            if match:
                _, alphabet, character, _ = match.groups()
                groups.setdefault((alphabet, character), []).append(name)
        if not groups:
            raise ValueError(
                f"{str(path)!r} holds no Omniglot images: expected entries like "
                "images_background/<Alphabet>/characterNN/NNNN_KK.png"
            )
        images, alphabets, characters = [], [], []
        for alphabet, character in sorted(groups):
            drawings = [
                _decode(archive.read(name), name, resample)
                for name in sorted(groups[(alphabet, character)])
            ]
            images.append(drawings)
            alphabets.append(alphabet)
            characters.append(f"{alphabet}/{character}")
    return images, alphabets, characters


def _decode(data, name, resample="lanczos"):
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data)).convert("L")
    except Exception as error:
        raise ValueError(f"Cannot decode Omniglot image {name!r}: {error}") from None
    return _to_28(np.asarray(image), resample)


def _to_28(gray, resample="lanczos"):
    """Grayscale uint8 (strokes dark) -> inverted 28x28 uint8 (strokes 255)."""
    from PIL import Image

    inverted = Image.fromarray((255 - gray.astype(np.uint8)))
    method = Image.LANCZOS if resample == "lanczos" else Image.NEAREST
    resized = inverted.resize((IMAGE_SIZE, IMAGE_SIZE), method)
    return np.asarray(resized, dtype=np.uint8)


def _load_tfds(resample="lanczos"):
    """`tfds.load("omniglot")`: train (background) then test (evaluation) splits."""
    import tensorflow_datasets as tfds

    groups = {}
    alphabet_names = None
    for split in ("train", "test"):
        dataset, info = tfds.load("omniglot", split=split, with_info=True)
        alphabet_names = info.features["alphabet"].names
        for example in tfds.as_numpy(dataset):
            image = example["image"]
            gray = image[..., 0] if image.ndim == 3 else image
            groups.setdefault(int(example["label"]), (int(example["alphabet"]), []))[1].append(_to_28(gray, resample))
    if not groups:
        raise ValueError("tfds.load('omniglot') returned no examples.")
    depth = min(len(v[1]) for v in groups.values())
    labels = sorted(groups)
    images = np.stack([np.stack(groups[l][1][:depth]) for l in labels])
    alphabets = [alphabet_names[groups[l][0]] for l in labels]
    characters = [f"{alphabets[i]}/label{l}" for i, l in enumerate(labels)]
    return Omniglot(images, alphabets, characters, "tfds:omniglot")
