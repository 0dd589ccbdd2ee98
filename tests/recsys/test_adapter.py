"""UserAdapter adapts on a user's whole support set with the loss meta-training used."""

import keras
import numpy as np

import fewshot
from fewshot.recsys.adapter import UserAdapter


def _padded_users(sizes, width=9):
    """Three users' supports padded to `width`, with `support_weight` marking the real rows."""
    rng = np.random.default_rng(0)
    return {
        "support_x": rng.normal(size=(len(sizes), width, 3)).astype("float32") * 4,
        "support_y": rng.normal(size=(len(sizes), width, 1)).astype("float32") * 4,
        "query_x": rng.normal(size=(len(sizes), 4, 3)).astype("float32"),
        "query_y": np.zeros((len(sizes), 4, 1), "float32"),
        "support_weight": (np.arange(width)[None] < np.asarray(sizes)[:, None]).astype("float32"),
    }


def test_user_adapter_matches_padded_masked_episodes():
    # Meta-training on padded supports (support_weight) takes the mean loss
    # over real ratings; the serving path, which adapts on the unpadded
    # support, must give the same adapted predictions.
    keras.utils.set_random_seed(0)
    learner = fewshot.MAML(fewshot.models.mlp((3,), (8,), 1), inner_lr=0.1, inner_steps=3)
    learner.compile(loss="mae")
    sizes = (2, 5, 9)
    batch = _padded_users(sizes)
    padded = learner.query_predictions(batch).numpy()[..., 0]
    adapter = UserAdapter(learner, steps=3)
    for t, size in enumerate(sizes):
        alone = adapter(batch["support_x"][t, :size], batch["support_y"][t, :size, 0], batch["query_x"][t])
        np.testing.assert_allclose(alone, padded[t], atol=1e-5)


def test_user_adapter_uses_the_support_shrinkage_of_training():
    # With support_shrinkage > 0 the serving path adapts with the same
    # shrunk support loss as meta-training (padded episodes) and `adapt`.
    keras.utils.set_random_seed(0)
    learner = fewshot.MAML(
        fewshot.models.mlp((3,), (8,), 1), inner_lr=0.3, inner_steps=3, support_shrinkage=5.0
    )
    learner.compile(loss="mae")
    plain = fewshot.MAML.from_config({**learner.get_config(), "support_shrinkage": 0.0})
    plain.set_weights(learner.get_weights())
    plain.compile(loss="mae")
    sizes = (1, 4, 9)
    batch = _padded_users(sizes)
    padded = learner.query_predictions(batch).numpy()[..., 0]
    adapter, unshrunk = UserAdapter(learner, steps=3), UserAdapter(plain, steps=3)
    for t, size in enumerate(sizes):
        sx, sy, qx = batch["support_x"][t, :size], batch["support_y"][t, :size], batch["query_x"][t]
        alone = adapter(sx, sy[:, 0], qx)
        np.testing.assert_allclose(alone, padded[t], atol=1e-5)
        adapted = learner.adapt(sx, sy, steps=3)
        np.testing.assert_allclose(alone, adapted.predict(qx, verbose=0)[:, 0], atol=1e-5)
        assert np.abs(alone - unshrunk(sx, sy[:, 0], qx)).max() > 1e-3
