"""The multilayer perceptron backbone."""

import keras

from fewshot.validation import check_int, is_int


def mlp(input_shape=(1,), hidden=(40, 40), outputs=1, activation="relu", dtype=None, name="mlp"):
    """A fully connected backbone: ``input -> hidden... -> outputs``.

    The default is the 1-40-40-1 ReLU network of the MAML sinusoid
    experiments. Its layers are named ``hidden_1``, ``hidden_2``, ... and
    ``head``, so ANIL can adapt ``adapt_layers=["head"]``.

    Args:
        input_shape: shape of one example, without the batch axis.
        hidden: widths of the hidden layers.
        outputs: width of the output layer (classes for logits).
        activation: activation of the hidden layers.
        dtype: layer dtype policy, for example ``"float64"``.
        name: model name.

    Returns:
        A built `keras.Sequential` model.

    Example:

    >>> import fewshot
    >>> model = fewshot.models.mlp(input_shape=(1,), hidden=(40, 40), outputs=1)
    >>> model.output_shape
    (None, 1)
    """
    outputs = check_int("outputs", outputs, minimum=1)
    widths = list(hidden) if _is_sequence(hidden) else None
    if widths is None or not all(is_int(w, minimum=1) for w in widths):
        raise ValueError(
            "Invalid value received for argument `hidden`. Expected a sequence of "
            f"positive integer widths, for example (40, 40). Received: hidden={hidden!r}"
        )
    widths = [int(w) for w in widths]
    shape = tuple(input_shape) if _is_sequence(input_shape) else None
    if not shape or not all(is_int(d, minimum=1) for d in shape):
        raise ValueError(
            "Invalid value received for argument `input_shape`. Expected the shape of "
            f"one example, a tuple of positive integers such as (4,). Received: "
            f"input_shape={input_shape!r}"
        )
    layers = [keras.Input(tuple(int(d) for d in shape), dtype=dtype)]
    for i, width in enumerate(widths):
        layers.append(
            keras.layers.Dense(width, activation=activation, dtype=dtype, name=f"hidden_{i + 1}")
        )
    layers.append(keras.layers.Dense(outputs, dtype=dtype, name="head"))
    return keras.Sequential(layers, name=name)


def _is_sequence(value):
    """Whether `value` is a list, tuple, array or other iterable that is not a string."""
    return hasattr(value, "__iter__") and not isinstance(value, (str, bytes, dict))
