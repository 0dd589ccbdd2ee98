"""The Conv4 backbone of the few-shot image classification literature."""

import numbers

import keras

from fewshot.models.batch_norm import BatchNormalization
from fewshot.validation import check_int, check_positive_float, is_int

# PyTorch's default initialisation of a ``Conv2d`` kernel (Kaiming uniform
# with a=sqrt(5)): uniform in +-1/sqrt(fan_in). Snell et al.'s Conv4 used it.
TORCH_CONV_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_in", "distribution": "uniform"},
}


def conv4(
    input_shape=(28, 28, 1),
    outputs=None,
    filters=64,
    blocks=4,
    batch_norm_momentum=0.99,
    batch_norm_epsilon=1e-3,
    kernel_initializer="glorot_uniform",
    name="conv4",
):
    """Conv4: ``blocks`` x [3x3 conv, batch norm, ReLU, 2x2 max-pool], flatten.

    The backbone of Vinyals et al. (2016), Finn et al. (2017) and Snell et
    al. (2017). On 28x28 Omniglot images four blocks leave a 1x1x64 map, so
    the embedding has 64 features. With `outputs` a linear layer named
    ``head`` gives logits (for MAML-family learners; ANIL adapts only
    ``head``); without it the model is an encoder (for metric learners).
    The batch normalisation is `fewshot.models.BatchNormalization`, Keras'
    layer with exact second derivatives (second-order MAML needs them).
    Layers are named ``conv_<i>``, ``bn_<i>``, ``relu_<i>``, ``pool_<i>``,
    ``flatten`` and ``head``. Padding is "same", so 84x84 inputs work too.

    The model is a `keras.Sequential`, so `get_config`/`from_config` round-
    trip it, and it runs under `stateless_call` inside `tf.vectorized_map`
    (MAML's inner loop), batch normalisation included.

    Args:
        input_shape: shape of one image, ``(height, width, channels)``.
        outputs: width of the linear head, or None for an encoder.
        filters: channels of every convolution. Default 64.
        blocks: number of conv blocks. Default 4.
        batch_norm_momentum: momentum of the moving statistics.
        batch_norm_epsilon: added to the variance in batch normalisation
            (Keras' 1e-3 by default; PyTorch's is 1e-5).
        kernel_initializer: initializer of the convolution kernels, any
            `keras.initializers.get` argument. Default Keras'
            ``"glorot_uniform"``; `TORCH_CONV_INITIALIZER` is PyTorch's
            default for ``Conv2d`` (uniform in +-1/sqrt(fan_in)). The
            convolution biases start at zero: batch normalisation cancels them.
        name: model name.

    Returns:
        A built `keras.Sequential`.

    Example:

    >>> import fewshot
    >>> encoder = fewshot.models.conv4(input_shape=(28, 28, 1))
    >>> encoder.output_shape
    (None, 64)
    >>> fewshot.models.conv4(outputs=5).output_shape
    (None, 5)
    """
    filters = check_int("filters", filters, minimum=1)
    blocks = check_int("blocks", blocks, minimum=1)
    if outputs is not None and not is_int(outputs, minimum=1):
        raise ValueError(
            "Invalid value received for argument `outputs`. Expected a "
            f"positive integer or None. Received: outputs={outputs!r}"
        )
    shape = tuple(input_shape) if hasattr(input_shape, "__iter__") else None
    if shape is None or len(shape) != 3 or not all(is_int(d, minimum=1) for d in shape):
        raise ValueError(
            "Invalid value received for argument `input_shape`. Expected "
            f"(height, width, channels). Received: input_shape={input_shape!r}"
        )
    shape = tuple(int(d) for d in shape)
    if (
        isinstance(batch_norm_momentum, bool)
        or not isinstance(batch_norm_momentum, numbers.Real)
        or not 0 <= batch_norm_momentum < 1
    ):
        raise ValueError(
            "Invalid value received for argument `batch_norm_momentum`. Expected a "
            f"float in [0, 1). Received: batch_norm_momentum={batch_norm_momentum!r}"
        )
    batch_norm_epsilon = check_positive_float("batch_norm_epsilon", batch_norm_epsilon)
    try:
        keras.initializers.get(kernel_initializer)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "Invalid value received for argument `kernel_initializer`. Expected a "
            f"keras initializer or its name. Received: kernel_initializer={kernel_initializer!r}"
        ) from error
    layers = [keras.Input(shape)]
    for i in range(1, blocks + 1):
        layers += [
            keras.layers.Conv2D(
                filters, 3, padding="same", kernel_initializer=keras.initializers.get(kernel_initializer),
                name=f"conv_{i}",
            ),
            BatchNormalization(
                momentum=float(batch_norm_momentum), epsilon=float(batch_norm_epsilon), name=f"bn_{i}"
            ),
            keras.layers.ReLU(name=f"relu_{i}"),
            keras.layers.MaxPooling2D(2, name=f"pool_{i}"),
        ]
    layers.append(keras.layers.Flatten(name="flatten"))
    if outputs is not None:
        layers.append(keras.layers.Dense(int(outputs), name="head"))
    return keras.Sequential(layers, name=name)
