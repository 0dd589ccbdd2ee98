"""Your own images as few-shot classes: one folder per class.

The layout is Keras' `image_dataset_from_directory`'s::

    glyphs/
        alpha/  a1.png  a2.png ...
        beta/   b1.png  b2.png ...

Each image is decoded by its content (PNG, JPEG, GIF or BMP; never by its
name), resized and scaled to [0, 1] by the same reader as the app's uploads
(`fewshot.uploads.read_image`), and grouped by its class folder into the store
that `fewshot.episodes.EpisodeSampler.from_classes` takes.
"""

import os
import pathlib
import warnings

import numpy as np

from fewshot.uploads import IMAGE_EXTENSIONS, UploadError, read_image
from fewshot.validation import check_image_size, check_int

#: Largest image file read, in bytes.
MAX_IMAGE_BYTES = 64 * 1024 * 1024
_ON_INVALID = ("raise", "skip")


def load_image_folder(directory, image_size=(28, 28), channels=1, on_invalid="raise", max_per_class=None):
    """Reads a folder with one subfolder of images per class.

    Every subfolder of `directory` is a class, named after the folder; its
    images are found at any depth below it and read in sorted path order.
    Files whose names do not end in an image extension (``.png``, ``.jpg``,
    ``.jpeg``, ``.gif``, ``.bmp``) and hidden files are passed over, and so are
    files directly in `directory`. A file that has an image's name but is not
    a readable image (empty, truncated, another format) is never dropped in
    silence: by default the folder is refused with a list of such files;
    ``on_invalid="skip"`` leaves them out with a warning that names them.

    Args:
        directory: the folder holding the class folders.
        image_size: ``(height, width)`` every image is resized to.
        channels: 1 (grayscale) or 3 (RGB). Transparent pixels are shown on
            white.
        on_invalid: ``"raise"`` or ``"skip"``, for files that cannot be read.
        max_per_class: read at most this many images of each class (the
            first in sorted path order); None reads all.

    Returns:
        A dict ``{class_name: float32 [n, height, width, channels]}`` with
        values in [0, 1], in sorted class order; a class folder without images
        is left out. Everything is held in memory: n x height x width x
        channels x 4 bytes in all.

    Raises:
        ValueError: `directory` is not a folder, holds no class folder with
            images, a file cannot be read (with ``on_invalid="raise"``), or
            an argument is out of range.

    Example:

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> import fewshot
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("alpha", "beta", "gamma"):
    ...     (root / name).mkdir()
    ...     for i in range(3):
    ...         pixels = np.random.default_rng(i).integers(0, 255, (40, 40), np.uint8)
    ...         Image.fromarray(pixels).save(root / name / f"{i}.png")
    >>> store = fewshot.datasets.load_image_folder(root, image_size=(28, 28))
    >>> sorted(store), store["alpha"].shape
    (['alpha', 'beta', 'gamma'], (3, 28, 28, 1))
    >>> sampler = fewshot.episodes.EpisodeSampler.from_classes(store, ways=3, shots=1, queries=2)
    >>> tuple(sampler.sample(num_tasks=4, seed=0)["support_x"].shape)
    (4, 3, 28, 28, 1)
    """
    root = _check_directory(directory)
    size = check_image_size("image_size", image_size)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(
            "Invalid value received for argument `channels`. Expected 1 (grayscale) "
            f"or 3 (RGB). Received: channels={channels!r}"
        )
    if on_invalid not in _ON_INVALID:
        raise ValueError(
            "Invalid value received for argument `on_invalid`. Expected one of "
            f"{list(_ON_INVALID)}. Received: on_invalid={on_invalid!r}"
        )
    if max_per_class is not None:
        check_int("max_per_class", max_per_class, minimum=1)
    store, invalid = {}, []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = []
        for path in _image_files(folder):
            if max_per_class is not None and len(images) == max_per_class:
                break
            name = str(path.relative_to(root))
            try:
                images.append(read_image(
                    path.read_bytes(), name, MAX_IMAGE_BYTES, size=size, grayscale=channels == 1
                ))
            except (UploadError, OSError) as error:
                invalid.append(f"{name}: {error}")
        if images:
            store[folder.name] = np.stack(images).astype(np.float32)
    if invalid:
        listed = "; ".join(invalid[:5]) + (f"; and {len(invalid) - 5} more" if len(invalid) > 5 else "")
        if on_invalid == "raise":
            raise ValueError(
                f"{len(invalid)} image file(s) in {str(root)!r} cannot be read ({listed}). "
                "Remove or fix them, or pass on_invalid='skip' to leave them out. "
                f"Received: directory={str(directory)!r}"
            )
        warnings.warn(f"load_image_folder left out {len(invalid)} unreadable file(s): {listed}", stacklevel=2)
    if not store:
        raise ValueError(
            f"Found no class folder with images in {str(root)!r}: expected one "
            f"subfolder per class holding {', '.join(IMAGE_EXTENSIONS)} files. "
            f"Received: directory={str(directory)!r}"
        )
    return store


def _check_directory(directory):
    try:
        root = pathlib.Path(os.fspath(directory))
    except TypeError:
        raise ValueError(
            "Invalid value received for argument `directory`. Expected a path to a "
            f"folder. Received: directory={directory!r}"
        ) from None
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise ValueError(
            f"Invalid value received for argument `directory`: it {what}. "
            f"Received: directory={str(directory)!r}"
        )
    return root



def _image_files(folder):
    """The image files at any depth below `folder`, sorted, hidden ones passed over."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(
            pathlib.Path(dirpath, f) for f in filenames
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
        )
    return sorted(found)
