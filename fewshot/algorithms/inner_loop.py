"""Fast weights: gradient steps on explicit parameter tensors.

The inner loop never assigns to variables. It runs the backbone functionally
(`keras.Model.stateless_call`) on a list of parameter tensors and returns new
tensors, so an enclosing `tf.GradientTape` sees the whole chain and the outer
gradient flows through every inner update (second order). With
``first_order=True`` the inner gradients are treated as constants, which is
first-order MAML.
"""

import keras
import tensorflow as tf


def functional_forward(model, params, non_trainable, x, training):
    """Runs `model` on `x` with trainable weights `params` (no assignment)."""
    outputs, _ = model.stateless_call(params, non_trainable, x, training=training)
    return outputs


def split_at_adapted(model, mask):
    """Splits a `keras.Sequential` before its first layer with an adapted weight.

    The layers before it (ANIL's body) see no change in the inner loop, so
    their output on a task's support set is the same at every step: it can
    be computed once and only the rest of the model stepped through.

    Args:
        model: the backbone.
        mask: one bool per trainable variable of `model`: adapted or not.

    Returns:
        ``(body, head)``, two `LayerRun`s, or None when `model` is not a
        `keras.Sequential` or its first layer holds an adapted weight.
    """
    if not isinstance(model, keras.Sequential):
        return None
    adapted = {id(v) for v, m in zip(model.trainable_variables, mask) if m}
    layers = list(model.layers)
    first = next(
        (i for i, layer in enumerate(layers) if any(id(v) in adapted for v in layer.trainable_variables)),
        0,
    )
    if first == 0:
        return None
    return LayerRun(model, layers[:first]), LayerRun(model, layers[first:])


class LayerRun:
    """A run of consecutive layers of `model`, called on explicit weights.

    The layers read their variables from the model-wide lists of trainable
    and non-trainable values, matched by identity, inside a
    `keras.StatelessScope` (as `keras.Model.stateless_call` does for the
    whole model), and each is called as a layer (its `training` argument,
    dtype casting and masks as usual).
    """

    def __init__(self, model, layers):
        self.layers = list(layers)
        trainable = {id(v): i for i, v in enumerate(model.trainable_variables)}
        fixed = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
        self._trainable = [(v, trainable[id(v)]) for l in self.layers for v in l.trainable_variables]
        self._fixed = [(v, fixed[id(v)]) for l in self.layers for v in l.non_trainable_variables]

    def __call__(self, params, non_trainable, x, training):
        """The layers' output on `x` with the model-wide `params` and `non_trainable` values."""
        mapping = [(v, params[i]) for v, i in self._trainable]
        mapping += [(v, non_trainable[i]) for v, i in self._fixed]
        with keras.StatelessScope(state_mapping=mapping):
            for layer in self.layers:
                x = layer(x, training=training)
        return x


def advance_seeds(non_trainable, positions, step):
    """`non_trainable` with the seed states at `positions` moved on by `step`.

    A stateless call with the same seed states draws the same dropout mask
    every time; offsetting them by the step gives each step its own mask,
    reproducibly.
    """
    state = list(non_trainable)
    for i in positions:
        state[i] = state[i] + tf.cast(tf.stack([0, step]), state[i].dtype)
    return state


def gradient_steps(
    loss_fn, params, steps, learning_rates, first_order=False, mask=None, recompute=False
):
    """Takes `steps` steps of gradient descent on fast weights.

    Args:
        loss_fn: a function of the parameter list returning a scalar loss.
        params: list of parameter tensors (the starting point).
        steps: number of steps, a Python int (the loop unrolls in a graph).
        learning_rates: one entry per parameter: a float or a tensor that
            broadcasts against the parameter (Meta-SGD's per-weight rates).
        first_order: stop gradients through the inner gradients.
        mask: optional list of bools; parameters marked False stay fixed
            (ANIL adapts only the head).
        recompute: gradient checkpointing: wrap each step in
            `tf.recompute_grad`, so the outer backward pass keeps only each
            step's parameters and recomputes the step's activations, instead
            of holding every step's activations and inner gradients at once.
            Same gradient; less memory, more compute.

    Returns:
        ``(params, losses)``: the adapted parameter list and the list of
        ``steps`` support losses, each taken before its update.

    Example:

    >>> import tensorflow as tf
    >>> from fewshot.algorithms.inner_loop import gradient_steps
    >>> w = [tf.constant(3.0)]
    >>> new, losses = gradient_steps(lambda p: p[0] ** 2, w, 2, [0.25])
    >>> float(new[0])
    0.75

    """
    mask = [True] * len(params) if mask is None else list(mask)
    params = list(params)
    count = len(params)

    def step(*flat):
        current, rates = list(flat[:count]), flat[count:]
        adapted = [p for p, m in zip(current, mask) if m]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(adapted)
            loss = loss_fn(current)
        grads = tape.gradient(
            loss, adapted, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        if first_order:
            grads = [tf.stop_gradient(g) for g in grads]
        grads = iter(grads)
        updated = [
            p - tf.cast(lr, p.dtype) * next(grads) if m else p
            for p, m, lr in zip(current, mask, rates)
        ]
        return updated + [loss]

    if recompute:
        step = _checkpointed(step)
        # Rates enter as tensors so their gradient (Meta-SGD) flows through.
        learning_rates = [tf.convert_to_tensor(lr) for lr in learning_rates]
    losses = []
    for _ in range(steps):
        outputs = step(*params, *learning_rates)
        params, loss = list(outputs[:count]), outputs[count]
        losses.append(loss)
    return params, losses


def _checkpointed(step):
    """`step` whose backward pass recomputes it from its inputs.

    The forward pass keeps no intermediate tensors for the enclosing tape;
    the gradient re-runs `step` under a tape of its own (nested inner tape
    included, so second-order terms stay) and pulls the output gradients
    back to the inputs, and to any variable the step reads (a learned
    support shrinkage, for example), which `tf.custom_gradient` passes in as
    ``variables``.
    """

    @tf.custom_gradient
    def checkpointed(*inputs):
        outputs = step(*inputs)

        def grad(*output_grads, variables=None):
            output_grads = [
                tf.zeros_like(o) if g is None else g for o, g in zip(outputs, output_grads)
            ]
            # Identities that wait for the output gradients: the recomputation
            # then runs during the backward pass, and graph optimisation
            # cannot merge it with the forward pass (which would keep the
            # forward activations alive after all).
            with tf.control_dependencies(output_grads):
                again = [tf.identity(x) for x in inputs]
            variables = list(variables or [])
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(again)
                tape.watch(variables)
                recomputed = step(*again)
            grads = tape.gradient(
                recomputed,
                again + variables,
                output_gradients=output_grads,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
            if not variables:
                return grads
            return grads[: len(again)], grads[len(again) :]

        return outputs, grad

    return checkpointed
