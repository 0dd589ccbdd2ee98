"""The on-disk caches' folder, and their one way to write: whole or not at all.

Decoded Omniglot images, featurised molecules and downloaded CSVs are cached
under ``$FEWSHOT_CACHE``. Two runs started together (two recipe cells, two
test workers) can fill the same entry at once, and a run can be stopped half
way. `write_atomically` gives each writer a temporary file of its own in the
entry's folder and renames it into place only once it is complete, so a
reader sees the old entry, or none, or a whole new one; with two writers the
last rename wins, and both wrote the same thing. `default_cache_dir` is the
folder every cache lives under unless a caller passes its own.
"""

import contextlib
import os
import pathlib
import tempfile


def default_cache_dir():
    """The folder the caches live under: ``$FEWSHOT_CACHE``, or ``~/.cache/fewshot``.

    An unset or empty ``$FEWSHOT_CACHE`` means the default. Each cache keeps a
    subfolder of its own (``omniglot``, ``features``, ``downloads``).

    Returns:
        A `pathlib.Path`; it may not exist yet.

    Example:

    >>> import os, pathlib
    >>> from fewshot.datasets.cache_files import default_cache_dir
    >>> before = os.environ.get("FEWSHOT_CACHE")
    >>> os.environ["FEWSHOT_CACHE"] = "/tmp/fewshot-cache"
    >>> str(default_cache_dir())
    '/tmp/fewshot-cache'
    >>> os.environ["FEWSHOT_CACHE"] = ""
    >>> default_cache_dir() == pathlib.Path.home() / ".cache" / "fewshot"
    True
    >>> if before is None:
    ...     del os.environ["FEWSHOT_CACHE"]
    ... else:
    ...     os.environ["FEWSHOT_CACHE"] = before
    """
    return pathlib.Path(os.environ.get("FEWSHOT_CACHE") or pathlib.Path.home() / ".cache" / "fewshot")


@contextlib.contextmanager
def write_atomically(path):
    """Opens a binary file that becomes `path` when the ``with`` block ends without error.

    The file is a fresh temporary one beside `path` (`tempfile.mkstemp`),
    made readable by others as a plain ``open`` would (mode 0644), then
    renamed onto `path` (`os.replace`). If the block raises, the temporary
    file is removed and `path` is left as it was.

    Args:
        path: where the finished file goes; its folder must exist.

    Yields:
        The temporary file, open for writing bytes.

    Example:

    >>> import pathlib, tempfile
    >>> from fewshot.datasets.cache_files import write_atomically
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "entry.json"
    >>> with write_atomically(path) as f:
    ...     _ = f.write(b'{"a": 1}')
    >>> path.read_text(), [p.name for p in path.parent.iterdir()]
    ('{"a": 1}', ['entry.json'])
    """
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
