import numpy as np
import pytest

from fewshot.episodes import EpisodeStream, Sinusoid


def _epoch(stream):
    return [b["support_y"].numpy() for b in stream.dataset]


def test_epochs_differ_and_replay_exactly():
    stream = Sinusoid().stream(meta_batch_size=3, batches_per_epoch=4, seed=7)
    first = _epoch(stream)
    assert len(first) == 4
    stream.set_epoch(1)
    second = _epoch(stream)
    assert not np.allclose(first[0], second[0])
    # A fresh stream asked for epoch 1 replays it: what resuming relies on.
    fresh = Sinusoid().stream(meta_batch_size=3, batches_per_epoch=4, seed=7)
    fresh.set_epoch(1)
    for a, b in zip(second, _epoch(fresh)):
        np.testing.assert_array_equal(a, b)


def test_callback_follows_keras_epochs():
    stream = Sinusoid().stream(meta_batch_size=2, batches_per_epoch=2, seed=0)
    callback = stream.callback
    callback.on_epoch_begin(5)
    assert stream.epoch == 5


def test_take_is_fixed():
    stream = Sinusoid().stream(meta_batch_size=2, batches_per_epoch=2, seed=0)
    a, b = stream.take(3), stream.take(3)
    assert len(a) == 3
    np.testing.assert_array_equal(a[2]["query_x"], b[2]["query_x"])


def test_invalid_batches_per_epoch():
    with pytest.raises(ValueError, match="Received: batches_per_epoch=0"):
        EpisodeStream(lambda seed: {}, batches_per_epoch=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"seed": "abc"}, r"argument `seed`. Expected an integer in \[-2\*\*63, 2\*\*63\). Received: seed='abc'"),
        ({"seed": 2**64}, r"Received: seed=18446744073709551616"),
        ({"seed": 0.9}, r"Received: seed=0.9"),
        ({"batches_per_epoch": 0}, r"argument `batches_per_epoch`. Expected a positive integer"),
    ],
)
def test_bad_stream_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Sinusoid().stream(meta_batch_size=2, **kwargs)


def test_numpy_integers_are_stream_settings():
    stream = Sinusoid().stream(meta_batch_size=np.int64(2), batches_per_epoch=np.int64(3), seed=np.int64(5))
    assert (stream.batches_per_epoch, stream.seed) == (3, 5)
