import numpy as np
import pytest
import tensorflow as tf

from fewshot.episodes.seeds import stateless_seed


def test_integers_become_a_pair_with_zero():
    assert stateless_seed(7).numpy().tolist() == [7, 0]
    assert stateless_seed(np.int32(-3)).numpy().tolist() == [-3, 0]
    assert stateless_seed(7).dtype == tf.int64


def test_pairs_are_kept_and_cast_to_int64():
    key = tf.random.experimental.stateless_split(tf.constant([1, 2], tf.int64), 2)[1]
    seed = stateless_seed(key)
    assert seed.dtype == tf.int64 and seed.numpy().tolist() == key.numpy().tolist()
    assert stateless_seed(np.array([5, 6], np.int32)).numpy().tolist() == [5, 6]


def test_same_seed_same_draws():
    draw = lambda s: tf.random.stateless_uniform([4], stateless_seed(s)).numpy()
    np.testing.assert_array_equal(draw(3), draw(3))
    assert not np.array_equal(draw(3), draw(4))


@pytest.mark.parametrize("bad", [True, 1.5, "7", b"7", [1, 2, 3], [1.0, 2.0], None])
def test_anything_else_is_refused_naming_the_argument(bad):
    with pytest.raises(ValueError, match=r"argument `seed`.*Received: seed="):
        stateless_seed(bad)
