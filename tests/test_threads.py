"""Tests for fewshot.threads: run in fresh processes, where TensorFlow's runtime has not started."""

import pathlib
import subprocess
import sys
import textwrap

import pytest

import fewshot

ROOT = pathlib.Path(__file__).resolve().parents[1]
# A Conv4 meta-update in a fresh process takes seconds on an idle machine; the limit
# only stops a hung child, so it is generous for a machine shared with training.
TIMEOUT_S = 600


def _run(code):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_cpu_cores_is_the_affinity_set():
    assert 1 <= fewshot.threads.cpu_cores() <= (__import__("os").cpu_count() or 1)


def test_sets_one_thread_per_op_and_workers_at_once():
    out = _run("""
        import tensorflow as tf
        from fewshot.threads import set_task_parallel_threads, cpu_cores
        print(set_task_parallel_threads(3))
        tf.constant(1.0) + 1.0  # the runtime starts with these pools
        print(tf.config.threading.get_intra_op_parallelism_threads(),
              tf.config.threading.get_inter_op_parallelism_threads())
        print(set_task_parallel_threads(3))  # the same pools again: allowed
    """)
    assert out == ["3", "1", "3", "3"]


def test_default_is_one_worker_per_core():
    out = _run("""
        from fewshot.threads import set_task_parallel_threads, cpu_cores
        print(set_task_parallel_threads() == cpu_cores())
    """)
    assert out == ["True"]


def test_after_the_runtime_started_the_error_says_when_to_call_it():
    out = _run("""
        import tensorflow as tf
        from fewshot.threads import set_task_parallel_threads
        tf.constant(1.0) + 1.0
        try:
            set_task_parallel_threads(2)
        except RuntimeError as error:
            print("before-any-op" if "before any TensorFlow op" in str(error)
                  and "Received: workers=2" in str(error) else str(error))
    """)
    assert out == ["before-any-op"]


def test_or_warn_sets_in_a_fresh_process_and_warns_after_the_runtime_started():
    out = _run("""
        import warnings
        import tensorflow as tf
        from fewshot.threads import set_task_parallel_threads_or_warn
        print(set_task_parallel_threads_or_warn(1, setting="threads = 1"))
        tf.constant(1.0) + 1.0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = set_task_parallel_threads_or_warn(2, setting="threads = 2")
        message = str(caught[0].message) if caught else ""
        print(result, message.startswith("`threads = 2` not applied") and "before any TensorFlow op" in message)
    """)
    assert out == ["1", "None", "True"]


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_workers(workers):
    with pytest.raises(ValueError, match=f"Received: workers={workers!r}"):
        fewshot.threads.set_task_parallel_threads(workers)


def test_meta_update_under_task_parallel_pools_equals_the_whole_batch():
    """Two tasks per chunk, run side by side, give the whole batch's update within 1e-5.

    The chunked-versus-whole-batch test of the task loop (second order, Conv4
    shape), run again in a process whose pools `set_task_parallel_threads` set.
    """
    out = _run("""
        from fewshot.threads import set_task_parallel_threads
        set_task_parallel_threads(2)
        from tests.algorithms.test_maml_vectorize import (
            test_tasks_per_chunk_gives_the_same_meta_update as same_update,
        )
        import tensorflow as tf
        same_update("conv4", vectorize=False)
        print(tf.config.threading.get_intra_op_parallelism_threads(),
              tf.config.threading.get_inter_op_parallelism_threads())
    """)
    assert out[-2:] == ["1", "2"]
