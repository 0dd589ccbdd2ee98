"""Seeds for TensorFlow's stateless random ops.

The episode samplers draw every episode with stateless ops
(`tf.random.stateless_uniform` and friends), which take a ``[2]`` integer
seed. `stateless_seed` turns what a user passes, a plain integer or such a
tensor, into that form, with a Keras-style error for anything else.
"""

import numbers

import tensorflow as tf


def stateless_seed(seed):
    """An int (NumPy's too) or a ``[2]`` integer tensor as a stateless ``[2]`` int64 seed.

    Args:
        seed: an integer, or a ``[2]`` integer tensor or array (for example a
            key from `tf.random.experimental.stateless_split`).

    Returns:
        A ``[2]`` int64 tensor: ``[seed, 0]`` for an integer, else `seed` cast
        to int64.

    Raises:
        ValueError: "Invalid value received for argument `seed`. Expected an
            integer or a [2] integer tensor (a stateless seed). Received:
            seed=...".

    Example:

    >>> from fewshot.episodes.seeds import stateless_seed
    >>> stateless_seed(7).numpy().tolist()
    [7, 0]
    """
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return tf.constant([int(seed), 0], tf.int64)
    try:
        tensor = None if isinstance(seed, (bool, str, bytes)) else tf.convert_to_tensor(seed)
    except (TypeError, ValueError):
        tensor = None
    if tensor is None or not tensor.dtype.is_integer or not tensor.shape.is_compatible_with([2]):
        raise ValueError(
            "Invalid value received for argument `seed`. Expected an integer or "
            f"a [2] integer tensor (a stateless seed). Received: seed={seed!r}"
        )
    return tf.cast(tensor, tf.int64)
