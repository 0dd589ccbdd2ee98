import platform
import subprocess
import sys
import textwrap

import pytest

from fewshot import allocator

GLIBC = platform.libc_ver()[0] == "glibc"
needs_glibc = pytest.mark.skipif(not GLIBC, reason="the malloc tunables are glibc's")

# Allocates, touches and frees a 64 MiB block 20 times; prints the minor page
# faults it cost. Default glibc maps such a block afresh each time (about 16k
# faults a round); with the thresholds raised the freed block is reused.
_FAULTS = textwrap.dedent(
    """
    import os, resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        block = b"\\x01" * (64 << 20)
        del block
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, os.environ.get("GLIBC_TUNABLES"))
    """
)


def _faults(env):
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True,
        check=True, timeout=120,
    ).stdout.split()
    return int(out[0]), out[1]


@needs_glibc
def test_tuned_environ_appends_the_settings_and_keeps_the_users():
    env = allocator.tuned_environ({"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert env["PATH"] == "/bin"
    items = env["GLIBC_TUNABLES"].split(":")
    assert items[0] == "glibc.malloc.arena_max=2"
    assert {item.split("=")[0] for item in items[1:]} == {name for name, _ in allocator.MALLOC_TUNABLES}
    # A tunable the user set keeps the user's value; only the other one is added.
    env = allocator.tuned_environ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"})
    assert env["GLIBC_TUNABLES"] == f"glibc.malloc.trim_threshold=0:glibc.malloc.mmap_threshold={1 << 40}"


@needs_glibc
def test_tuned_environ_has_nothing_to_do_when_every_setting_is_named():
    done = allocator.tuned_environ({})
    assert allocator.tuned_environ(done) is None


def test_tuned_environ_leaves_other_c_libraries_alone(monkeypatch):
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    assert allocator.tuned_environ({}) is None


@needs_glibc
def test_the_settings_stop_the_page_faults_of_large_blocks():
    base = {"PATH": "/usr/bin:/bin"}
    plain, plain_tunables = _faults(base)
    tuned_env = allocator.tuned_environ(base)
    tuned, tuned_tunables = _faults(tuned_env)
    assert plain_tunables == "None"
    assert tuned_tunables == tuned_env["GLIBC_TUNABLES"]
    assert plain > 100_000, plain  # 20 fresh 64 MiB mappings of 4 KiB pages
    assert tuned < plain / 5, (tuned, plain)


def test_module_prints_the_export_line():
    result = subprocess.run(
        [sys.executable, "-m", "fewshot.allocator"], capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    if GLIBC:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "export GLIBC_TUNABLES=" + allocator.tuned_environ({})["GLIBC_TUNABLES"]
    else:
        assert result.returncode != 0 and "not glibc" in result.stderr
