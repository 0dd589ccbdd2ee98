"""The MLP backbone: NumPy arguments, and named errors for bad ones."""

import numpy as np
import pytest

import fewshot


def test_numpy_arguments_are_accepted():
    model = fewshot.models.mlp(input_shape=np.array([4]), hidden=np.array([8, 8]), outputs=np.int64(3))
    assert model.input_shape == (None, 4)
    assert model.output_shape == (None, 3)
    assert [layer.units for layer in model.layers] == [8, 8, 3]
    assert all(type(layer.units) is int for layer in model.layers)


def test_float64():
    model = fewshot.models.mlp(input_shape=(2,), hidden=(3,), outputs=1, dtype="float64")
    assert all(v.dtype == "float64" for v in model.weights)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": 4}, r"argument `input_shape`. Expected the shape of one example.*Received: input_shape=4"),
        ({"input_shape": ()}, r"Received: input_shape=\(\)"),
        ({"hidden": 40}, r"argument `hidden`. Expected a sequence of positive integer widths.*Received: hidden=40"),
        ({"hidden": (40, 0)}, r"Received: hidden=\(40, 0\)"),
        ({"hidden": "40"}, r"Received: hidden='40'"),
        ({"outputs": 1.5}, r"Expected a positive integer. Received: outputs=1.5"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fewshot.models.mlp(**kwargs)
