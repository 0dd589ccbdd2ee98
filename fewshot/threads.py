"""TensorFlow's CPU thread pools, set for running the tasks of a meta-batch side by side.

By default TensorFlow gives each op all the cores (intra-op threads). The ops
of one meta-learning task are small (a Conv4 layer on a 5-way 1-shot support
set is a few MFLOP), and splitting each across cores mostly buys
synchronisation. Tasks are independent, so a better use of the cores is one
task per core: `set_task_parallel_threads` gives every op a single thread and
lets as many ops as there are cores run at once (inter-op threads). With
`MAML(..., vectorize=False, tasks_per_chunk=2)` the two tasks of a chunk are
two independent subgraphs, and TensorFlow's executor runs them concurrently.
Measured on a 2-core CPU (benchmarks/README.md): second-order MAML with 5
inner steps on Conv4, 5-way 1-shot, about 1.5x the meta-steps/s of the
default pools.

The pools are fixed when TensorFlow's runtime starts (its first op or device
query), so call it at the top of a script, before any TensorFlow work.
"""

import os
import warnings

import tensorflow as tf

from fewshot.validation import check_int


def cpu_cores():
    """The number of CPU cores this process may run on.

    Returns:
        The size of the process's CPU affinity set where the platform has
        one (it honours `taskset` and container limits), else
        `os.cpu_count()`.

    Example:

    >>> import fewshot
    >>> fewshot.threads.cpu_cores() >= 1
    True
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_task_parallel_threads(workers=None):
    """Gives each TensorFlow op one thread and runs `workers` ops at once.

    Use it with a task loop, `MAML(..., vectorize=False,
    tasks_per_chunk=2)` (or more tasks per chunk), so that there are
    independent tasks to run side by side; a vectorised meta-batch
    (`tf.vectorized_map`) is one stream of large ops and is better served by
    TensorFlow's default pools. For a tiny model whose ops take microseconds
    (the sinusoid MLP), ``workers=1`` (one thread in all) is the fastest:
    twice TensorFlow's default pools on the 2-core CPU of
    benchmarks/README.md, where handing such ops between threads costs more
    than it saves.

    Args:
        workers: the number of ops that may run at once (inter-op threads);
            `None` means one per core (`cpu_cores()`).

    Returns:
        The number of inter-op threads set.

    Raises:
        ValueError: if `workers` is not a positive integer.
        RuntimeError: if TensorFlow's runtime has already started with other
            pools (they can only be set before its first op).

    Example (at the top of a training script, before any TensorFlow op):

    ```python
    import fewshot

    fewshot.threads.set_task_parallel_threads()
    learner = fewshot.MAML(
        fewshot.models.conv4(input_shape=(28, 28, 1), outputs=5),
        inner_lr=0.4, inner_steps=5, vectorize=False, tasks_per_chunk=2,
    )
    ```
    """
    workers = cpu_cores() if workers is None else check_int("workers", workers, minimum=1)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(workers)
    except RuntimeError as error:
        raise RuntimeError(
            "TensorFlow's thread pools are fixed once its runtime has started; call "
            "`set_task_parallel_threads` at the top of the script, before any TensorFlow "
            f"op. Received: workers={workers} with the runtime already running "
            f"(intra-op threads {tf.config.threading.get_intra_op_parallelism_threads()}, "
            f"inter-op threads {tf.config.threading.get_inter_op_parallelism_threads()}; "
            "0 means TensorFlow's default)"
        ) from error
    return workers


def set_task_parallel_threads_or_warn(workers=None, setting="task_parallel_threads"):
    """`set_task_parallel_threads`, or a warning where the runtime already runs.

    For recipes, whose thread setting is a speed option: a process in which
    TensorFlow has started (a test, a notebook) keeps its pools and goes on.

    Args:
        workers: as in `set_task_parallel_threads`.
        setting: how the caller's configuration names the option, for the
            warning (for example ``"threads = 1"``).

    Returns:
        The number of inter-op threads set, or `None` when only warned.
    """
    try:
        return set_task_parallel_threads(workers)
    except RuntimeError as error:
        warnings.warn(f"`{setting}` not applied: {error}", stacklevel=3)
        return None
