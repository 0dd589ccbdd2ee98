"""ANIL: MAML that adapts only the head in the inner loop."""

import keras

from fewshot.algorithms.maml import MAML
from fewshot.algorithms.meta_learner import _all_layers


@keras.saving.register_keras_serializable(package="fewshot")
class ANIL(MAML):
    """Almost No Inner Loop (ANIL): only the head adapts to each task.

    MAML whose inner loop updates only the layers in `adapt_layers`, by
    default the backbone's last layer that holds weights (the head); the
    body is still meta-learned in the outer loop, as a feature extractor
    shared by every task. The inner loop is much cheaper than MAML's, and
    Raghu et al. report the same accuracy on Omniglot and mini-ImageNet.
    On a `keras.Sequential` backbone the body's features on the support set
    are computed once per task and only the head is stepped through (the
    same meta-gradient; on Conv4 at 5 inner steps 1.7-1.9x the speed of
    running the whole backbone at every step, benchmarks/anil_speed.py).

    Args:
        backbone: a built Keras model.
        adapt_layers: names of the layers adapted in the inner loop; default
            the last layer with trainable weights.
        inner_lr, inner_steps, first_order, vectorize, batch_norm: as in
            `fewshot.MAML`.
        **kwargs: passed to `keras.Model`.

    Example:

    >>> import keras, fewshot
    >>> backbone = fewshot.models.mlp(input_shape=(1,), hidden=(40, 40), outputs=1)
    >>> anil = fewshot.ANIL(backbone, inner_lr=0.01)
    >>> anil.adapt_layers
    ['head']
    >>> anil.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    >>> stream = fewshot.episodes.Sinusoid().stream(meta_batch_size=4, batches_per_epoch=2)
    >>> history = anil.fit(stream, epochs=1, verbose=0)

    Reference:
        Raghu, Raghu, Bengio and Vinyals, "Rapid Learning or Feature Reuse?
        Towards Understanding the Effectiveness of MAML", ICLR 2020.
    """

    def __init__(self, backbone, adapt_layers=None, **kwargs):
        if adapt_layers is None and isinstance(backbone, keras.layers.Layer) and backbone.built:
            adapt_layers = [head_layer_name(backbone)]
        super().__init__(backbone, adapt_layers=adapt_layers, **kwargs)


def head_layer_name(backbone):
    """The name of the last layer of `backbone` that holds trainable weights."""
    layers = [l for l in _all_layers(backbone) if l.trainable_weights and not getattr(l, "layers", None)]
    if not layers:
        raise ValueError(
            "Invalid value received for argument `backbone`: it has no layer "
            f"with trainable weights to adapt. Received: backbone={getattr(backbone, 'name', backbone)!r}"
        )
    return layers[-1].name
