"""Gradient checks the tests share: central finite differences and a relative error."""

import numpy as np
import tensorflow as tf


def finite_differences(loss, variables, eps=1e-5):
    """Central differences of `loss()` (a float) in every entry of `variables`.

    `loss` reads the variables' current values at every call (for example a
    `tf.function` compiled once); each entry is shifted by +-eps in turn and
    the variables are restored.
    """
    grads = []
    for variable in variables:
        base = variable.numpy()
        grad = np.zeros_like(base)
        for index in np.ndindex(base.shape):
            values = []
            for sign in (1.0, -1.0):
                shifted = base.copy()
                shifted[index] += sign * eps
                variable.assign(shifted)
                values.append(float(loss()))
            grad[index] = (values[0] - values[1]) / (2 * eps)
        variable.assign(base)
        grads.append(grad)
    return grads


def meta_gradient(learner, episodes):
    """The learner's meta-gradient on `episodes`, one array per trainable variable."""
    with tf.GradientTape() as tape:
        loss, _ = learner.meta_loss(episodes, training=True)
    return [g.numpy() for g in tape.gradient(loss, learner.trainable_variables)]


def meta_loss_differences(learner, episodes, eps=1e-5):
    """`finite_differences` of the learner's meta-loss in its trainable variables."""
    meta_loss = tf.function(lambda: learner.meta_loss(episodes, training=True)[0], autograph=False)
    return finite_differences(meta_loss, learner.trainable_variables, eps)


def relative_error(a, b):
    """||a - b|| / ||b|| over lists of arrays, flattened together."""
    a = np.concatenate([np.ravel(x) for x in a])
    b = np.concatenate([np.ravel(x) for x in b])
    return np.linalg.norm(a - b) / np.linalg.norm(b)
