"""glibc's malloc, set so that TensorFlow's large CPU tensors are not re-mapped every step.

By default glibc serves blocks larger than a threshold (dynamic, at most 32 MiB)
with a fresh `mmap` and unmaps them when freed, and gives the free memory at the
top of its heap back to the kernel once it passes a trim threshold. A TensorFlow
training step allocates and frees many tensors of that size (a second-order MAML
step on 8 tasks of 2048 fingerprint bits holds several of 10-60 MiB), so every
step pays the kernel to map zeroed pages again: on a 2-core AMD EPYC that step
spent 40% of its time in the kernel (3.2 million minor page faults in 30 steps),
and ran 1.7x faster with both thresholds raised out of reach (8.6 thousand faults;
benchmarks/README.md). The Conv4 Omniglot step, whose tensors are small, is
unchanged.

The thresholds are glibc *tunables*, read once when a process starts, so the
`fewshot` command re-executes itself once with `GLIBC_TUNABLES` set (the
`fewshot.cli.console_main` entry point); scripts can do the same with
`reexec_with_tuned_malloc()` as their first statement, or be started under
`GLIBC_TUNABLES=...` (`tuned_environ()` builds it). The cost: a process keeps
its peak heap instead of returning freed memory to the system, which suits a
training or evaluation process. `FEWSHOT_MALLOC_TUNING=0` turns it off; on
systems without glibc (macOS, Windows, musl) nothing changes.
"""

import os
import platform
import sys

# 1 TiB: "never" in practice. (4 GiB was not always enough: glibc compares the
# trim threshold with the heap's free top, which a step can push past that.)
MALLOC_TUNABLES = (
    ("glibc.malloc.mmap_threshold", 1 << 40),
    ("glibc.malloc.trim_threshold", 1 << 40),
)
OPT_OUT = "FEWSHOT_MALLOC_TUNING"


def tuned_environ(environ=None):
    """An environment whose `GLIBC_TUNABLES` holds the malloc settings, if it lacks them.

    Args:
        environ: the environment to start from (a mapping); `os.environ` by
            default. It is not modified.

    Returns:
        A new dict: `environ` with `MALLOC_TUNABLES` appended to its
        `GLIBC_TUNABLES` (other tunables kept, a tunable already named there
        left as the user set it); or `None` when there is nothing to do: the C
        library is not glibc, `FEWSHOT_MALLOC_TUNING` is `0`, or every tunable
        is already named.

    Example:

    >>> from fewshot.allocator import tuned_environ
    >>> env = tuned_environ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    >>> env is None or env["GLIBC_TUNABLES"].startswith("glibc.malloc.arena_max=2:")
    True
    >>> tuned_environ({"FEWSHOT_MALLOC_TUNING": "0"}) is None
    True
    """
    environ = dict(os.environ if environ is None else environ)
    if environ.get(OPT_OUT, "").strip().lower() in ("0", "false", "no", "off"):
        return None
    if platform.libc_ver()[0] != "glibc":
        return None
    current = environ.get("GLIBC_TUNABLES", "")
    named = {item.split("=", 1)[0] for item in current.split(":") if item}
    missing = [f"{name}={value}" for name, value in MALLOC_TUNABLES if name not in named]
    if not missing:
        return None
    environ["GLIBC_TUNABLES"] = ":".join(([current] if current else []) + missing)
    return environ


def reexec_with_tuned_malloc():
    """Restarts this process with the malloc settings, once; returns if nothing to do.

    Replaces the running process (same interpreter, interpreter options and
    arguments, from `sys.orig_argv`) by one whose environment carries the
    settings of `tuned_environ()`. In the restarted process the settings are
    present, so the call returns and the program goes on. Call it first
    thing, before any work whose effects would be lost.

    Example (a script's first lines; not run here, it would restart the test):

    >>> from fewshot.allocator import reexec_with_tuned_malloc
    >>> callable(reexec_with_tuned_malloc)  # in a script: reexec_with_tuned_malloc()
    True
    """
    environ = tuned_environ()
    if environ is None or not getattr(sys, "orig_argv", None):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), environ)
