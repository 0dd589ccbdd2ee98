import stat

import pytest

from fewshot.datasets.cache_files import default_cache_dir, write_atomically


def test_the_file_appears_whole_when_the_block_ends(tmp_path):
    path = tmp_path / "entry.npz"
    with write_atomically(path) as f:
        f.write(b"first half ")
        assert not path.exists()  # nothing at the entry until the file is complete
        f.write(b"second half")
    assert path.read_bytes() == b"first half second half"
    assert [p.name for p in tmp_path.iterdir()] == ["entry.npz"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_two_writers_at_once_each_have_their_own_file_and_the_last_wins(tmp_path):
    path = tmp_path / "entry.json"
    with write_atomically(path) as first:
        first.write(b"from the first run")
        with write_atomically(path) as second:
            second.write(b"from the second run")
        assert path.read_bytes() == b"from the second run"
    assert path.read_bytes() == b"from the first run"
    assert [p.name for p in tmp_path.iterdir()] == ["entry.json"]


def test_a_failed_write_leaves_the_old_entry_and_no_temporary_file(tmp_path):
    path = tmp_path / "entry.csv"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="No space left"):
        with write_atomically(path) as f:
            f.write(b"new but cut short")
            raise OSError(28, "No space left on device")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["entry.csv"]


def test_the_default_folder_is_fewshot_cache_unless_it_is_unset_or_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FEWSHOT_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.setenv("FEWSHOT_CACHE", "")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "fewshot"
    monkeypatch.delenv("FEWSHOT_CACHE")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "fewshot"
