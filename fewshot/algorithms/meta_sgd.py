"""Meta-SGD: MAML with per-parameter inner learning rates learned too."""

import keras

from fewshot.algorithms.maml import MAML, check_per_variable


@keras.saving.register_keras_serializable(package="fewshot")
class MetaSGD(MAML):
    """Meta-SGD: learns the initialisation and a learning rate per weight.

    Like MAML, but the inner update is ``theta - alpha * grad`` with
    ``alpha`` a trainable tensor of the same shape as ``theta`` (one rate per
    weight, which also learns the update's direction through its sign),
    initialised to `inner_lr` and meta-learned in the outer loop with the
    initialisation. The rates are the learner's own weights, named
    ``inner_lr_<i>``, listed by `inner_learning_rates()`, saved with the
    model, and used by `adapt`.

    Args:
        backbone: a built Keras model.
        inner_lr: the initial value of every learned rate. Default 0.01.
        inner_steps, first_order, adapt_layers, vectorize, batch_norm: as in
            `fewshot.MAML`.
        **kwargs: passed to `keras.Model`.

    Example:

    >>> import keras, fewshot
    >>> backbone = fewshot.models.mlp(input_shape=(1,), hidden=(40, 40), outputs=1)
    >>> metasgd = fewshot.MetaSGD(backbone, inner_lr=0.01)
    >>> metasgd.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    >>> stream = fewshot.episodes.Sinusoid().stream(meta_batch_size=4, batches_per_epoch=2)
    >>> history = metasgd.fit(stream, epochs=1, verbose=0)
    >>> len(metasgd.inner_learning_rates()) == len(backbone.trainable_variables)
    True

    Reference:
        Li, Zhou, Chen and Li, "Meta-SGD: Learning to Learn Quickly for
        Few-Shot Learning", arXiv:1707.09835, 2017.
    """

    def __init__(self, backbone, inner_lr=0.01, **kwargs):
        super().__init__(backbone, inner_lr=inner_lr, **kwargs)
        # The variables the rates belong to, by position (untracked).
        self.__dict__["_rated_variables"] = list(self.backbone.trainable_variables)
        self.learned_rates = [
            self.add_weight(
                shape=tuple(v.shape),
                initializer=keras.initializers.Constant(self.inner_lr),
                dtype=v.dtype,
                trainable=True,
                name=f"inner_lr_{i}",
            )
            for i, v in enumerate(self.backbone.trainable_variables)
        ]

    def inner_learning_rates(self):
        """The learned rates: one variable per backbone trainable variable.

        Raises:
            ValueError: if the backbone's trainable variables changed since
                construction (a layer frozen or unfrozen): the rates would no
                longer line up with them.
        """
        check_per_variable(self, self._rated_variables, "a learned inner rate")
        return list(self.learned_rates)
