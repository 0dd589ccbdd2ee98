"""Callbacks that meta-training adds by itself."""

import math

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
