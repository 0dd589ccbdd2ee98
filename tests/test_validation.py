import math

import numpy as np
import pytest

from fewshot.validation import check_int, check_positive_float, check_seed


@pytest.mark.parametrize("value", [math.inf, math.nan, 0, -1.0, True, "0.1"])
def test_check_positive_float_refuses_non_finite_and_non_positive(value):
    with pytest.raises(ValueError, match="argument `lr`. Expected a positive float"):
        check_positive_float("lr", value)


def test_check_positive_float_accepts_numpy():
    assert check_positive_float("lr", np.float32(0.5)) == 0.5


@pytest.mark.parametrize("value", [-(2**63), 0, 2**63 - 1, np.int64(7)])
def test_check_seed_accepts_64_bit_integers(value):
    assert check_seed("seed", value) == int(value) and type(check_seed("seed", value)) is int


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 1.0, "1", None, False])
def test_check_seed_names_the_argument(value):
    with pytest.raises(ValueError, match=r"argument `seed`. Expected an integer in \[-2\*\*63, 2\*\*63\)"):
        check_seed("seed", value)


def test_check_int_returns_python_ints():
    assert type(check_int("steps", np.int64(3))) is int
