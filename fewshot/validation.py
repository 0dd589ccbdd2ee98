"""Argument checks shared by constructors and methods, with Keras-style errors."""

import math
import numbers

import numpy as np


def is_int(value, minimum=0):
    """Whether `value` is an integer (NumPy's too, not a bool) >= `minimum`."""
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= minimum


def check_bool(name, value):
    """Returns `value` as a bool if it is one (NumPy's too), else a Keras-style error.

    Example:

    >>> from fewshot.validation import check_bool
    >>> check_bool("first_order", True)
    True
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a bool. "
            f"Received: {name}={value!r}"
        )
    return bool(value)


def check_int(name, value, minimum=0):
    """Returns `value` as an int if it is an integer (not a bool) >= `minimum`.

    NumPy integers count as integers.

    Raises:
        ValueError: "Invalid value received for argument `name`. Expected an
            integer >= minimum (a positive integer, when minimum is 1).
            Received: name=value".

    Example:

    >>> from fewshot.validation import check_int
    >>> check_int("steps", 3)
    3
    """
    if not is_int(value, minimum):
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected "
            f"{expected}. Received: {name}={value!r}"
        )
    return int(value)


def check_seed(name, value):
    """Returns `value` as an int if it is an integer seed (64-bit, signed).

    NumPy integers count as integers.

    Raises:
        ValueError: "Invalid value received for argument `name`. Expected an
            integer in [-2**63, 2**63). Received: name=value".

    Example:

    >>> from fewshot.validation import check_seed
    >>> check_seed("seed", 7)
    7
    """
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or not -(2**63) <= value < 2**63):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected an integer "
            f"in [-2**63, 2**63). Received: {name}={value!r}"
        )
    return int(value)


def check_positive_float(name, value):
    """Returns `value` if it is a finite real number (not a bool) > 0.

    Raises:
        ValueError: "Invalid value received for argument `name`. Expected a
            positive float. Received: name=value" (also for inf and NaN).

    Example:

    >>> from fewshot.validation import check_positive_float
    >>> check_positive_float("inner_lr", 0.01)
    0.01
    """
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0
            or not math.isfinite(value)):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a "
            f"positive float. Received: {name}={value!r}"
        )
    return value


def first_few(values, limit=5):
    """The first `limit` values joined by commas, then " ..." if there are more (for messages).

    Example:

    >>> from fewshot.validation import first_few
    >>> first_few(["a", "b", "c"], limit=2)
    'a, b ...'
    """
    return ", ".join(map(str, values[:limit])) + (" ..." if len(values) > limit else "")


def check_image_size(name, value):
    """Returns `value` as ``(height, width)`` if it is two positive integers.

    Example:

    >>> from fewshot.validation import check_image_size
    >>> check_image_size("image_size", [28, 28])
    (28, 28)
    """
    try:
        height, width = value
    except (TypeError, ValueError):
        height = width = None
    if not (is_int(height, 1) and is_int(width, 1)):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected (height, width), "
            f"two positive integers. Received: {name}={value!r}"
        )
    return int(height), int(width)


def check_finite_rows(name, array, rows="examples"):
    """Raises if the float array `array` holds NaN or infinite values.

    Raises:
        ValueError: "Invalid value received for argument `name`: it holds NaN
            or infinite values. Received: B non-finite rows of N", counting the
            rows (first-axis entries) that hold one.

    Example:

    >>> import numpy as np
    >>> from fewshot.validation import check_finite_rows
    >>> check_finite_rows("x", np.zeros((3, 2)))
    """
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array.reshape(len(array), -1))).any(axis=1).sum())
        raise ValueError(
            f"Invalid value received for argument `{name}`: it holds NaN or infinite "
            f"values. Received: {bad} non-finite {rows} of {len(array)}"
        )
