"""glibc's malloc, set so that TensorFlow's large CPU tensors are not re-mapped every step.

By default glibc serves blocks larger than a threshold (dynamic, at most 32 MiB)
with a fresh `mmap` and unmaps them when freed, and gives the free memory at the
top of its heap back to the kernel once it passes a trim threshold. A TensorFlow
training step allocates and frees many tensors of that size (a second-order MAML
step on 8 tasks of 2048 fingerprint bits holds several of 10-60 MiB), so every
step pays the kernel to map zeroed pages again: on a 2-core AMD EPYC that step
spent 40% of its CPU time in the kernel (about 100 thousand minor page faults a
step), and ran 1.6x faster with both thresholds raised out of reach (a few
hundred faults a step; `benchmarks/malloc_tuning.py`). The Conv4 Omniglot step,
whose tensors are small, is unchanged.

The thresholds are glibc *tunables*, read once when a process starts, so they
go in the environment of the process to be started: `tuned_environ()` builds it,
for a subprocess or to print for a shell (`export GLIBC_TUNABLES=...`, as
`python -m fewshot.allocator` prints). The `fewshot` command does not restart
itself with them: importing TensorFlow twice would add about 7 s to every
command, and the recipes' training phases run under wall-clock budgets, so on the
drug-property recipe the faster MAML steps bought more epochs (maml 7 instead of
5 in its 200 s), not a shorter run (30.1 and 30.2 min; benchmarks/README.md).
The cost of the settings: a process keeps its peak heap instead of returning
freed memory to the system. On systems without glibc (macOS, Windows, musl)
`tuned_environ()` returns None.
"""

import os
import platform

# 1 TiB: "never" in practice. (With 4 GiB one probe of that step still took a
# million page faults in 30 steps, another eight thousand; with 1 TiB, eight thousand.)
MALLOC_TUNABLES = (
    ("glibc.malloc.mmap_threshold", 1 << 40),
    ("glibc.malloc.trim_threshold", 1 << 40),
)


def tuned_environ(environ=None):
    """An environment whose `GLIBC_TUNABLES` holds the malloc settings, if it lacks them.

    Args:
        environ: the environment to start from (a mapping); `os.environ` by
            default. It is not modified.

    Returns:
        A new dict: `environ` with `MALLOC_TUNABLES` appended to its
        `GLIBC_TUNABLES` (other tunables kept, a tunable already named there
        left as the user set it); or `None` when there is nothing to do: the C
        library is not glibc, or every tunable is already named.

    Example:

    >>> from fewshot.allocator import tuned_environ
    >>> env = tuned_environ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    >>> env is None or env["GLIBC_TUNABLES"].startswith("glibc.malloc.arena_max=2:")
    True
    >>> tuned_environ(env) is None if env else True  # nothing left to add
    True
    """
    environ = dict(os.environ if environ is None else environ)
    if platform.libc_ver()[0] != "glibc":
        return None
    current = environ.get("GLIBC_TUNABLES", "")
    named = {item.split("=", 1)[0] for item in current.split(":") if item}
    missing = [f"{name}={value}" for name, value in MALLOC_TUNABLES if name not in named]
    if not missing:
        return None
    environ["GLIBC_TUNABLES"] = ":".join(([current] if current else []) + missing)
    return environ


if __name__ == "__main__":
    environ = tuned_environ()
    if environ is None:
        raise SystemExit("nothing to set: the C library is not glibc, or GLIBC_TUNABLES already names the settings")
    print(f"export GLIBC_TUNABLES={environ['GLIBC_TUNABLES']}")
