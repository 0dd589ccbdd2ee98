"""The multilayer perceptron backbone."""

import keras

from fewshot.validation import check_int


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
    check_int("outputs", outputs, minimum=1)
    widths = list(hidden)
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(
            "Invalid value received for argument `hidden`. Expected positive "
            f"integer widths. Received: hidden={hidden!r}"
        )
    layers = [keras.Input(tuple(input_shape), dtype=dtype)]
    for i, width in enumerate(widths):
        layers.append(
            keras.layers.Dense(width, activation=activation, dtype=dtype, name=f"hidden_{i + 1}")
        )
    layers.append(keras.layers.Dense(outputs, dtype=dtype, name="head"))
    return keras.Sequential(layers, name=name)
