"""Any TensorFlow Datasets classification set as few-shot classes.

`load_tfds_classes("cifar100", split="train")` reads the split through
`tfds.load` (downloading it once, or from a local `data_dir` copy with
``download=False``), and groups the examples by label into the store that
`fewshot.episodes.EpisodeSampler.from_classes` takes.
"""

import numpy as np
import tensorflow as tf

from fewshot.validation import check_int, check_image_size


def load_tfds_classes(
    name,
    split="train",
    feature_key="image",
    label_key="label",
    image_size=None,
    channels=None,
    max_per_class=None,
    data_dir=None,
    download=True,
):
    """Reads a TFDS split into ``{label: examples}``.

    Images (``uint8`` features of rank 3) are scaled to [0, 1], resized to
    `image_size` when given (antialiased) and converted to `channels` when
    given; any other feature is read as ``float32`` as it is.

    Args:
        name: the TFDS dataset name, for example ``"omniglot"`` or
            ``"cifar100"`` (a version may follow, ``"mnist:3.0.1"``).
        split: the split to read (TFDS slicing works: ``"train[:50%]"``).
        feature_key: the feature holding the inputs.
        label_key: the feature holding the class (an integer or a string).
        image_size: ``(height, width)`` to resize images to; needed when the
            images differ in size.
        channels: 1 or 3 to convert images to grayscale or RGB; None keeps them.
        max_per_class: keep at most this many examples of each class (the
            first in the split's order); None keeps all.
        data_dir: where TFDS keeps (or finds) its prepared copy.
        download: False reads a prepared copy in `data_dir` only, never the
            network.

    Returns:
        A dict ``{label: float32 [n, ...]}`` in sorted label order. Integer
        labels stay integers, string labels are `str`.

    Raises:
        ValueError: the dataset cannot be loaded, a key is not one of its
            features, the images need `image_size`, or an argument is out of
            range.

    Example:

    >>> import tensorflow_datasets as tfds
    >>> import fewshot
    >>> with tfds.testing.mock_data(num_examples=60):  # offline: random MNIST-shaped data
    ...     store = fewshot.datasets.load_tfds_classes("mnist", split="train", max_per_class=4)
    >>> all(0 <= label <= 9 for label in store), store[min(store)].shape[1:]
    (True, (28, 28, 1))
    """
    import tensorflow_datasets as tfds

    size = None if image_size is None else check_image_size("image_size", image_size)
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise ValueError(
            "Invalid value received for argument `channels`. Expected 1, 3 or None. "
            f"Received: channels={channels!r}"
        )
    if max_per_class is not None:
        check_int("max_per_class", max_per_class, minimum=1)
    try:
        dataset = tfds.load(name, split=split, data_dir=data_dir, download=download)
    except Exception as error:  # tfds raises many kinds: not found, offline, bad split
        hint = "" if download else " (download=False: a prepared copy must be in `data_dir`)"
        raise ValueError(
            f"tfds.load could not load {name!r}, split {split!r}{hint}: "
            f"{type(error).__name__}: {_first_line(error)}. "
            f"Received: name={name!r}, split={split!r}, data_dir={data_dir!r}"
        ) from None
    spec = dataset.element_spec
    for argument, key in (("feature_key", feature_key), ("label_key", label_key)):
        if not isinstance(spec, dict) or key not in spec:
            found = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
            raise ValueError(
                f"Invalid value received for argument `{argument}`: {name!r} has no "
                f"feature {key!r}. Its features: {found}. Received: {argument}={key!r}"
            )
    feature, label = spec[feature_key], spec[label_key]
    if label.shape.rank != 0:
        raise ValueError(
            f"Invalid value received for argument `label_key`: feature {label_key!r} of "
            f"{name!r} is not one label per example (shape {label.shape}). "
            f"Received: label_key={label_key!r}"
        )
    is_image = feature.dtype == tf.uint8 and feature.shape.rank == 3
    if not is_image and (size is not None or channels is not None):
        raise ValueError(
            f"`image_size` and `channels` apply to images, and feature {feature_key!r} of "
            f"{name!r} is {feature.dtype.name} of shape {feature.shape}. "
            f"Received: image_size={image_size!r}, channels={channels!r}"
        )
    if not is_image and not (feature.dtype.is_integer or feature.dtype.is_floating or feature.dtype.is_bool):
        raise ValueError(
            f"Invalid value received for argument `feature_key`: feature {feature_key!r} of "
            f"{name!r} is {feature.dtype.name}, not images or numbers. "
            f"Received: feature_key={feature_key!r}"
        )
    if not is_image and not feature.shape.is_fully_defined():
        raise ValueError(
            f"Invalid value received for argument `feature_key`: feature {feature_key!r} of "
            f"{name!r} has no fixed shape ({feature.shape}). Received: feature_key={feature_key!r}"
        )
    if is_image and size is None and not feature.shape[:2].is_fully_defined():
        raise ValueError(
            f"The images of {name!r} differ in size ({feature.shape}): pass "
            f"image_size=(height, width). Received: image_size=None"
        )

    def prepare(example):
        x = example[feature_key]
        if is_image:
            x = tf.cast(x, tf.float32) / 255.0
            if channels == 1 and feature.shape[-1] != 1:
                x = tf.image.rgb_to_grayscale(x[..., :3])
            elif channels == 3 and feature.shape[-1] == 1:
                x = tf.image.grayscale_to_rgb(x)
            if size is not None:
                x = tf.clip_by_value(tf.image.resize(x, size, antialias=True), 0.0, 1.0)
        return tf.cast(x, tf.float32), example[label_key]

    groups = {}
    batches = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(256)
    for xs, ys in tfds.as_numpy(batches):
        for x, y in zip(xs, ys):
            key = y.decode("utf-8") if isinstance(y, bytes) else y.item()
            members = groups.setdefault(key, [])
            if max_per_class is None or len(members) < max_per_class:
                members.append(x)
    if not groups:
        raise ValueError(f"tfds.load({name!r}, split={split!r}) returned no examples.")
    return {key: np.stack(groups[key]) for key in sorted(groups)}


def _first_line(error):
    """The first line of an exception's message, without its closing full stop."""
    text = str(error).strip()
    return text.splitlines()[0].rstrip(".") if text else "(no message)"

