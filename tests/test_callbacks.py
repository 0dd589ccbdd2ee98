"""Callbacks of fewshot.callbacks: TimeBudget (StopOnNaN is tested with MAML)."""

import math

import keras
import numpy as np
import pytest

from fewshot.callbacks import TimeBudget


def _fit(callback, epochs=4):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((4, 2), "float32")
    return model.fit(x, x[:, :1], epochs=epochs, verbose=0, callbacks=[callback])


def test_time_budget_stops_at_the_first_epoch_end_past_the_budget():
    assert len(_fit(TimeBudget(seconds=1e-9)).history["loss"]) == 1
    assert len(_fit(TimeBudget(seconds=3600)).history["loss"]) == 4
    assert len(_fit(TimeBudget(seconds=math.inf)).history["loss"]) == 4


@pytest.mark.parametrize("seconds", [0, -1.0, float("nan"), True, "60", None])
def test_time_budget_refuses_a_bad_budget_by_name(seconds):
    with pytest.raises(ValueError, match=rf"Expected a positive number of seconds. Received: seconds={seconds!r}"):
        TimeBudget(seconds)
