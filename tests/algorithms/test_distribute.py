"""A meta-update split over replicas equals the meta-update on one device.

Each configuration runs in its own process (tests/algorithms/
distribute_worker.py): logical CPU devices and TF_CONFIG must be set before
TensorFlow initialises. `MirroredStrategy` runs on two logical CPU devices;
`MultiWorkerMirroredStrategy` on two worker processes on 127.0.0.1.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

WORKER = os.path.join(os.path.dirname(__file__), "distribute_worker.py")
TIMEOUT_S = 300


def _env(**extra):
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env["CUDA_VISIBLE_DEVICES"] = ""
    env.update(extra)
    return env


def _run(mode, prefix, env=None):
    return subprocess.Popen(
        [sys.executable, WORKER, mode, str(prefix)],
        env=env or _env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(processes):
    """Waits for the processes; returns how many tasks each replica adapted."""
    tasks = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=TIMEOUT_S)
            assert process.returncode == 0, output[-3000:]
            tasks.append(
                [int(line.split()[1]) for line in output.splitlines()
                 if line.startswith("TASKS_PER_REPLICA")]
            )
        return tasks
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _assert_same_update(reference, other, replicas):
    one, many = np.load(reference), np.load(other)
    assert int(many["replicas"]) == replicas
    names = [k for k in one.files if k.startswith("w")]
    assert names
    for name in names:
        np.testing.assert_allclose(many[name], one[name], rtol=0, atol=1e-5)
    np.testing.assert_allclose(float(many["loss"]), float(one["loss"]), rtol=1e-5)


LOSSES = ("mse", "sce", "reptile", "chunked", "chunked3")


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("single") / "single"
    assert _wait([_run("single", prefix)]) == [[4] * 5]  # 4 tasks, five problems
    return prefix


def test_chunked_meta_gradient_matches_the_whole_batch(single_device):
    """`tasks_per_chunk` of 1, and of 3 (a chunk and a task over), give the whole batch's update."""
    for chunked in ("chunked", "chunked3"):
        _assert_same_update(f"{single_device}-mse.npz", f"{single_device}-{chunked}.npz", replicas=1)


def test_mirrored_two_replicas_match_one_device(single_device, tmp_path):
    prefix = tmp_path / "mirrored"
    # Five problems, each split over two replicas: 2 tasks per replica.
    assert _wait([_run("mirrored", prefix)]) == [[2] * 10]
    for loss in LOSSES:
        _assert_same_update(f"{single_device}-{loss}.npz", f"{prefix}-{loss}.npz", replicas=2)


def test_multiworker_two_workers_match_one_device(single_device, tmp_path):
    hosts = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    workers = []
    for index in range(2):
        config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        env = _env(TF_CONFIG=json.dumps(config))
        workers.append(_run("multiworker", tmp_path / f"worker{index}", env))
    # Each worker (one replica) adapts 2 of the 4 tasks of each problem.
    assert _wait(workers) == [[2] * 5, [2] * 5]
    for index in range(2):
        for loss in LOSSES:
            _assert_same_update(
                f"{single_device}-{loss}.npz", tmp_path / f"worker{index}-{loss}.npz", replicas=2
            )
