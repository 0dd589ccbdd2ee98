"""MAML's `support_shrinkage`: the inner loss sum(w * loss) / (sum(w) + c)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import fewshot
from tests.algorithms.test_maml import _loss_and_gradient, _padded_batch, _ragged_tasks

KEYS = ("support_x", "support_y", "query_x", "query_y")


def _learner(shrinkage=0.0, first_order=False, vectorize=True, loss="mae", cls=None, **kwargs):
    keras.utils.set_random_seed(0)
    backbone = fewshot.models.mlp(
        input_shape=(2,), hidden=(3,), outputs=1, activation="tanh", dtype="float64"
    )
    learner = (cls or fewshot.MAML)(
        backbone, inner_lr=0.3, inner_steps=2, first_order=first_order, vectorize=vectorize,
        support_shrinkage=shrinkage, **kwargs,
    )
    learner.compile(optimizer="sgd", loss=loss)
    return learner


@pytest.mark.parametrize("loss", ["mae", keras.losses.MeanAbsoluteError()], ids=["fn", "Loss"])
def test_zero_shrinkage_is_the_mean_exactly(loss):
    learner = _learner(loss=loss)
    rng = np.random.default_rng(0)
    y, p = tf.constant(rng.normal(size=(5, 1))), tf.constant(rng.normal(size=(5, 1)))
    w = tf.constant([1.0, 1.0, 0.0, 1.0, 0.0], tf.float64)
    for weight in (None, w):
        plain = learner.per_task_loss(y, p, weight).numpy()
        assert learner.per_task_loss(y, p, weight, shrinkage=0.0).numpy() == plain
        assert learner.support_loss(y, p, weight).numpy() == plain


@pytest.mark.parametrize("loss", ["mae", keras.losses.MeanAbsoluteError()], ids=["fn", "Loss"])
def test_positive_shrinkage_is_the_hand_formula(loss):
    learner = _learner(shrinkage=3.0, loss=loss)
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=(5, 1)), rng.normal(size=(5, 1))
    errors = np.abs(y - p)[:, 0]
    w = np.array([1.0, 1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(
        learner.support_loss(tf.constant(y), tf.constant(p)).numpy(), errors.sum() / (5 + 3.0)
    )
    np.testing.assert_allclose(
        learner.support_loss(tf.constant(y), tf.constant(p), tf.constant(w)).numpy(),
        (w * errors).sum() / (w.sum() + 3.0),
    )


def test_an_inner_step_is_scaled_by_n_over_n_plus_c():
    tasks = _ragged_tasks(sizes=(2,))
    sx, sy = tf.constant(tasks[0][0]), tf.constant(tasks[0][1])
    plain, shrunk = _learner(loss="mse"), _learner(shrinkage=6.0, loss="mse")
    theta = plain.meta_parameters()
    one, _ = plain.adapt_parameters(theta, sx, sy, 1, True)
    other, _ = shrunk.adapt_parameters(theta, sx, sy, 1, True)
    for t, a, b in zip(theta, one, other):
        np.testing.assert_allclose(b - t, (a - t) * 2 / (2 + 6.0), atol=1e-12)


@pytest.mark.parametrize("first_order", [False, True])
def test_padding_changes_nothing_with_shrinkage(first_order):
    # Padded rows (garbage, weight 0) must change neither the meta-loss nor
    # its meta-gradient: both equal those of the unpadded tasks, one by one.
    tasks = _ragged_tasks(sizes=(1, 3, 6))
    learner = _learner(shrinkage=4.0, first_order=first_order)
    padded_loss, padded_grad = _loss_and_gradient(learner, _padded_batch(tasks, width=9))
    alone = [
        _loss_and_gradient(learner, {k: tf.constant(v[None]) for k, v in zip(KEYS, task)})
        for task in tasks
    ]
    np.testing.assert_allclose(padded_loss, np.mean([l for l, _ in alone]), atol=1e-6)
    for i, grad in enumerate(padded_grad):
        np.testing.assert_allclose(grad, np.mean([g[i] for _, g in alone], axis=0), atol=1e-6)
    looped = _learner(shrinkage=4.0, first_order=first_order, vectorize=False)
    loop_loss, loop_grad = _loss_and_gradient(looped, _padded_batch(tasks, width=9))
    np.testing.assert_allclose(loop_loss, padded_loss, atol=1e-8)
    for a, b in zip(loop_grad, padded_grad):
        np.testing.assert_allclose(a, b, atol=1e-8)
    # And shrinkage changes the result (it is not silently ignored).
    assert abs(_loss_and_gradient(_learner(first_order=first_order),
                                  _padded_batch(tasks, width=9))[0] - padded_loss) > 1e-4


def test_adapt_uses_the_shrunk_support_loss():
    tasks = _ragged_tasks(sizes=(3,))
    learner = _learner(shrinkage=5.0)
    adapted = learner.adapt(tasks[0][0], tasks[0][1], steps=2)
    pred = tf.constant(adapted.predict(tasks[0][0], verbose=0))
    np.testing.assert_allclose(
        adapted.adaptation_loss[-1],
        learner.support_loss(tf.constant(tasks[0][1]), pred).numpy(), atol=1e-6,
    )
    batch = {k: tf.constant(v[None]) for k, v in zip(KEYS, tasks[0])}
    np.testing.assert_allclose(
        adapted.predict(tasks[0][2], verbose=0), learner.query_predictions(batch)[0], atol=1e-8
    )


def test_task_retrieval_adapts_with_the_shrunk_support_loss():
    tasks = [tuple(a.astype("float32") for a in task) for task in _ragged_tasks(sizes=(3, 6))]
    keras.utils.set_random_seed(0)
    backbone = fewshot.models.mlp(input_shape=(2,), hidden=(3,), outputs=1, activation="tanh")
    learner = fewshot.TaskRetrieval(backbone, memory_size=2, inner_lr=0.3, support_shrinkage=5.0)
    learner.compile(optimizer="sgd", loss="mae")
    learner.remember(tasks[1][0], tasks[1][1], steps=3)
    adapted = learner.adapt(tasks[0][0], tasks[0][1], steps=2)
    pred = tf.constant(adapted.predict(tasks[0][0], verbose=0))
    expected = learner.support_loss(tf.constant(tasks[0][1]), pred).numpy()
    np.testing.assert_allclose(adapted.adaptation_loss[-1], expected, atol=1e-6)
    # With c = 5 and 3 examples the shrunk loss is 3/8 of the mean.
    mean = learner.per_task_loss(tf.constant(tasks[0][1]), pred).numpy()
    np.testing.assert_allclose(expected, mean * 3.0 / 8.0, rtol=1e-5)


@pytest.mark.parametrize("cls", [fewshot.MAML, fewshot.MetaSGD], ids=["MAML", "MetaSGD"])
def test_config_round_trip(cls):
    learner = _learner(shrinkage=2.5, cls=cls)
    config = learner.get_config()
    assert config["support_shrinkage"] == 2.5 and config["learn_support_shrinkage"] is False
    again = cls.from_config(config)
    assert again.support_shrinkage == 2.5 and not again.learn_support_shrinkage
    learned = _learner(shrinkage=2.5, cls=cls, learn_support_shrinkage=True)
    again = cls.from_config(learned.get_config())
    assert again.learn_support_shrinkage and again.support_shrinkage == 2.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"support_shrinkage": -1.0}, "Invalid value received for argument `support_shrinkage`. "
         "Expected a non-negative float. Received: support_shrinkage=-1.0"),
        ({"support_shrinkage": "3"}, "Received: support_shrinkage='3'"),
        ({"support_shrinkage": True}, "Received: support_shrinkage=True"),
        ({"support_shrinkage": float("nan")}, "Received: support_shrinkage=nan"),
        ({"support_shrinkage": float("inf")}, "Received: support_shrinkage=inf"),
        ({"learn_support_shrinkage": 1}, "Received: learn_support_shrinkage=1"),
        ({"learn_support_shrinkage": True}, "needs a positive starting value"),
        ({"learn_support_shrinkage": True, "support_shrinkage": 1.0, "first_order": True},
         "Received: support_shrinkage=1.0, first_order=True"),
    ],
)
def test_bad_values_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        fewshot.MAML(fewshot.models.mlp(), **kwargs)


def test_learned_shrinkage_gets_the_true_meta_gradient():
    learner = _learner(shrinkage=2.0, learn_support_shrinkage=True, loss="mse")
    batch = _padded_batch(_ragged_tasks(sizes=(1, 3, 6)), width=7)
    variable = learner.log_support_shrinkage
    assert any(v is variable for v in learner.trainable_variables)
    with tf.GradientTape() as tape:
        loss, _ = learner.meta_loss(batch, training=True)
    grad = float(tape.gradient(loss, variable))
    eps, start = 1e-6, float(variable.numpy())
    values = []
    for delta in (eps, -eps):
        variable.assign(start + delta)
        values.append(float(learner.meta_loss(batch, training=True)[0]))
    variable.assign(start)
    assert abs(grad) > 1e-6
    np.testing.assert_allclose(grad, (values[0] - values[1]) / (2 * eps), rtol=1e-5)
    np.testing.assert_allclose(float(learner.inner_support_shrinkage()), 2.0)


def test_learned_shrinkage_is_saved(tmp_path):
    learner = _learner(shrinkage=2.0, learn_support_shrinkage=True, loss="mse")
    learner.log_support_shrinkage.assign(np.log(7.0))
    learner.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(float(loaded.inner_support_shrinkage()), 7.0)
