"""Callbacks for meta-training: StopOnNaN (which `MetaLearner.fit` adds by itself) and TimeBudget."""

import math
import numbers
import time

import keras


class NaNLossError(FloatingPointError):
    """Raised when the meta-training loss becomes NaN or infinite."""


class StopOnNaN(keras.callbacks.Callback):
    """Stops training with a clear error when the loss is NaN or infinite.

    `MetaLearner.fit` adds it unless the callbacks already hold one. Unlike
    `keras.callbacks.TerminateOnNaN`, it raises `NaNLossError`, so a script
    cannot mistake a diverged run for a finished one, and the message says
    where it happened and what usually causes it.

    Example:

    >>> import fewshot
    >>> callback = fewshot.callbacks.StopOnNaN()
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if not math.isfinite(loss):
            self.model.stop_training = True
            raise NaNLossError(
                f"Meta-training stopped at epoch {self._epoch + 1}, batch "
                f"{batch + 1}: the query loss is {loss}. Usual causes: an "
                "inner or outer learning rate that is too large, NaN or "
                "infinite values in the episodes, or a loss that does not "
                "match the labels (for example logits given to a loss that "
                "expects probabilities)."
            )


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the first epoch end after `seconds` of wall clock.

    The clock starts when this `fit` call begins, so a resumed run (for
    example from `keras.callbacks.BackupAndRestore`) gets the whole budget
    again. The check runs at epoch ends only: an epoch that has started
    always finishes, so a run may overshoot by up to one epoch.

    Args:
        seconds: the budget, a positive number of seconds (``math.inf``:
            no budget).

    Example:

    >>> import fewshot
    >>> callback = fewshot.callbacks.TimeBudget(seconds=90 * 60)
    """

    def __init__(self, seconds):
        super().__init__()
        if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not seconds > 0:
            raise ValueError(
                "Invalid value received for argument `seconds`. Expected a positive "
                f"number of seconds. Received: seconds={seconds!r}"
            )
        self.seconds = float(seconds)
        self._start = None

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if time.perf_counter() - self._start >= self.seconds:
            self.model.stop_training = True
