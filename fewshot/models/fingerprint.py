"""The fingerprint encoder: an MLP over molecular fingerprints."""

import keras

from fewshot.validation import check_int


def fingerprint_encoder(input_dim, hidden=(512,), embedding=128, dropout=0.0, name="fingerprint_encoder"):
    """An MLP mapping fingerprints to embeddings, with optional dropout.

    ``input -> [Dense(relu) -> Dropout] x len(hidden) -> Dense(embedding)``.
    The last layer is linear and named ``head`` (so ANIL-style methods can
    adapt it); the hidden layers are ``hidden_1``, ``hidden_2``, ...

    Args:
        input_dim: fingerprint length (plus descriptors).
        hidden: widths of the hidden layers.
        embedding: width of the output (the embedding, or the logits).
        dropout: dropout rate after each hidden layer (0 disables it).
        name: model name.

    Returns:
        A built `keras.Sequential`.

    Example:

    >>> from fewshot.models import fingerprint_encoder
    >>> fingerprint_encoder(2048, hidden=(512,), embedding=128).output_shape
    (None, 128)
    """
    check_int("input_dim", input_dim, minimum=1)
    check_int("embedding", embedding, minimum=1)
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(
            "Invalid value received for argument `dropout`. Expected a float in "
            f"[0, 1). Received: dropout={dropout!r}"
        )
    layers = [keras.Input((input_dim,))]
    for i, width in enumerate(hidden):
        layers.append(keras.layers.Dense(int(width), activation="relu", name=f"hidden_{i + 1}"))
        if dropout:
            layers.append(keras.layers.Dropout(float(dropout), name=f"dropout_{i + 1}"))
    layers.append(keras.layers.Dense(embedding, name="head"))
    return keras.Sequential(layers, name=name)
