"""fewshot's MAML against PyTorch peers, side by side in one run.

Frameworks: fewshot (`fewshot.MAML`, tasks under `tf.vectorized_map`, Keras
`train_on_batch`; with XLA on the sinusoid; and with a task loop,
`vectorize=False`, accumulated task by task, `tasks_per_chunk=1`, and two
tasks at a time side by side, one per core, `tasks_per_chunk=2` with
`fewshot.threads.set_task_parallel_threads`, when asked), a PyTorch `torch.func`
implementation written here (`vmap` over tasks, `grad` for the inner and the
outer loop, `functional_call`), and learn2learn's `MAML` (`clone()` and
`adapt()` per task, the loop its examples use). Same model, data shapes,
inner learning rate, inner steps, Adam 1e-3 outer optimizer, float32.

Workloads: sinusoid (MLP 1-40-40-1 ReLU, meta-batch 25, K=10 support and 10
query points, 1 inner step, lr 0.01) and Omniglot-shaped Conv4 5-way 1-shot
(28x28x1 random inputs, 64 filters, batch norm on batch statistics, 5
queries per class, meta-batch 32, 1 and 5 inner steps, lr 0.4); each in
second and first order. On request (``--workloads ...-1query``), the 1-step
Conv4 workloads with 1 query per class, as Finn et al.'s Omniglot code draws.

Each (framework, workload) runs in its own worker process (fewshot in this
venv, the peers in benchmarks/.venv-peers, see setup_peers.sh), built and
warmed up first; then the workers of one workload are timed in interleaved
rounds, one at a time, and the table reports the median meta-steps/s, each
row's speed ratio to torch.func and to learn2learn (paired: the median over
rounds of the ratio of the two rates measured in one round), the worker's
peak resident memory (VmHWM; GPU: peak allocated), and the achieved fraction
of the machine's float32 matmul rate, measured in this run with a large
TensorFlow matmul (`--from-json FILE` reprints a saved run's table). FLOPs per
meta-step are counted analytically from the matmuls and convolutions
(forward F; a gradient step 3F; the second-order backward through an inner
step another 3F), so the fraction is approximate.

    bash benchmarks/setup_peers.sh      # once: benchmarks/.venv-peers
    python benchmarks/peers.py [--rounds 5] [--seconds 4] [--threads 1] [--device cpu|gpu]
        [--workloads sinusoid-2nd ...] [--frameworks fewshot torch.func ...] [--json out.json]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_PYTHON = os.environ.get(
    "PEERS_PYTHON", os.path.join(HERE, ".venv-peers", "bin", "python")
)

# name: (model, meta-batch, inner steps, first order, inner lr, Conv4 queries per class)
WORKLOADS = {
    "sinusoid-2nd": ("mlp", 25, 1, False, 0.01, None),
    "sinusoid-1st": ("mlp", 25, 1, True, 0.01, None),
    "conv4-5w1s-1step-2nd": ("conv4", 32, 1, False, 0.4, 5),
    "conv4-5w1s-1step-1st": ("conv4", 32, 1, True, 0.4, 5),
    "conv4-5w1s-5step-2nd": ("conv4", 32, 5, False, 0.4, 5),
    "conv4-5w1s-5step-1st": ("conv4", 32, 5, True, 0.4, 5),
    # Finn et al.'s Omniglot code queries 1 example per class (the recipe 5):
    # what ANCHORS.md's 4.2 / 1.9 meta-steps/s most likely measured. Not run
    # by default; name them in --workloads.
    "conv4-5w1s-1step-2nd-1query": ("conv4", 32, 1, False, 0.4, 1),
    "conv4-5w1s-1step-1st-1query": ("conv4", 32, 1, True, 0.4, 1),
}
DEFAULT_WORKLOADS = [name for name in WORKLOADS if not name.endswith("-1query")]
FRAMEWORKS = (
    "fewshot", "fewshot+XLA", "fewshot fit", "fewshot fit+XLA", "fewshot task loop",
    "fewshot chunked", "fewshot chunked+XLA", "fewshot parallel", "torch.func", "learn2learn",
)
# XLA was slower for Conv4 in ANCHORS.md, and `fit` only pays where a step
# takes milliseconds: these variants are measured on the MLP only.
MLP_ONLY = ("fewshot+XLA", "fewshot fit", "fewshot fit+XLA")
FIT_STEPS = 200  # meta-steps per `fit` call, run `steps_per_execution` at a time
WAYS, SHOTS = 5, 1
SIN_SHOTS = 10


# ------------------------------------------------------------------ data
def make_batches(model, tasks, queries, count=4, seed=0):
    """Meta-batches as numpy dicts (the same for every framework); `queries` per class for Conv4."""
    import numpy as np

    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        if model == "mlp":
            amp = rng.uniform(0.1, 5.0, (tasks, 1, 1)).astype("float32")
            phase = rng.uniform(0, np.pi, (tasks, 1, 1)).astype("float32")
            sx = rng.uniform(-5, 5, (tasks, SIN_SHOTS, 1)).astype("float32")
            qx = rng.uniform(-5, 5, (tasks, SIN_SHOTS, 1)).astype("float32")
            batches.append({"support_x": sx, "support_y": amp * np.sin(sx - phase),
                            "query_x": qx, "query_y": amp * np.sin(qx - phase)})
        else:
            labels = lambda k: np.tile(np.repeat(np.arange(WAYS), k), (tasks, 1)).astype("int64")
            batches.append({
                "support_x": rng.random((tasks, WAYS * SHOTS, 28, 28, 1), dtype="float32"),
                "support_y": labels(SHOTS),
                "query_x": rng.random((tasks, WAYS * queries, 28, 28, 1), dtype="float32"),
                "query_y": labels(queries),
            })
    return batches


def forward_flops(model, examples):
    """Multiply-add FLOPs (x2) of the matmuls and convolutions of a forward pass."""
    if model == "mlp":
        return 2 * examples * (1 * 40 + 40 * 40 + 40 * 1)
    flops, size, channels = 0, 28, 1
    for _ in range(4):
        flops += 2 * size * size * 9 * channels * 64
        channels, size = 64, size // 2
    return examples * (flops + 2 * channels * size * size * WAYS)


def meta_step_flops(name):
    model, tasks, steps, first_order, _, queries = WORKLOADS[name]
    support = SIN_SHOTS if model == "mlp" else WAYS * SHOTS
    query = SIN_SHOTS if model == "mlp" else WAYS * queries
    inner = 3 * forward_flops(model, support) * (1 if first_order else 2)
    return tasks * (steps * inner + 3 * forward_flops(model, query))


# --------------------------------------------------------------- fewshot
def build_fewshot(name, device, xla, vectorize=True, fit=False, tasks_per_chunk=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    import fewshot

    if device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    model, tasks, steps, first_order, lr, queries = WORKLOADS[name]
    keras.utils.set_random_seed(0)
    if model == "mlp":
        backbone = fewshot.models.mlp(hidden=(40, 40))
        loss = "mse"
    else:
        backbone = fewshot.models.conv4(input_shape=(28, 28, 1), outputs=WAYS)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    learner = fewshot.MAML(
        backbone, inner_lr=lr, inner_steps=steps, first_order=first_order, vectorize=vectorize,
        tasks_per_chunk=tasks_per_chunk,
    )
    learner.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=loss, jit_compile=xla,
        steps_per_execution=FIT_STEPS if fit else 1,
    )
    batches = [{k: tf.constant(v) for k, v in b.items()} for b in make_batches(model, tasks, queries)]
    state = {"i": 0}

    def peak_mib():
        if device == "gpu":
            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        return None

    if fit:
        # Keras' own loop: one `fit` call runs FIT_STEPS meta-steps inside one
        # compiled function (steps_per_execution), with no Python per step.
        stacked = {k: tf.stack([b[k] for b in batches]) for k in batches[0]}
        dataset = tf.data.Dataset.from_tensor_slices(stacked).repeat().prefetch(2)

        def fit_steps():
            learner.fit(dataset, epochs=1, steps_per_epoch=FIT_STEPS, verbose=0)
            return FIT_STEPS

        return fit_steps, lambda: None, peak_mib

    def step():
        learner.train_on_batch(batches[state["i"] % len(batches)])
        state["i"] += 1

    return step, lambda: None, peak_mib


# ----------------------------------------------------------------- torch
def torch_model(model):
    import torch.nn as nn

    if model == "mlp":
        return nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1))
    layers, channels = [], 1
    for _ in range(4):
        layers += [nn.Conv2d(channels, 64, 3, padding=1),
                   nn.BatchNorm2d(64, track_running_stats=False),
                   nn.ReLU(), nn.MaxPool2d(2)]
        channels = 64
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(64, WAYS))


def build_torch(name, device, flavour):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    model, tasks, steps, first_order, lr, queries = WORKLOADS[name]
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    net = torch_model(model).to(dev)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    batches = []
    for b in make_batches(model, tasks, queries):
        b = {k: torch.from_numpy(v).to(dev) for k, v in b.items()}
        if model == "conv4":  # NHWC -> NCHW
            b["support_x"] = b["support_x"].permute(0, 1, 4, 2, 3).contiguous()
            b["query_x"] = b["query_x"].permute(0, 1, 4, 2, 3).contiguous()
        batches.append(b)
    task_loss = F.mse_loss if model == "mlp" else F.cross_entropy
    state = {"i": 0}

    if flavour == "torch.func":
        from torch.func import functional_call, grad, vmap

        names = [n for n, _ in net.named_parameters()]

        def loss_at(params, x, y):
            return task_loss(functional_call(net, params, (x,)), y)

        def one_task(params, sx, sy, qx, qy):
            fast = params
            for _ in range(steps):
                g = grad(loss_at)(fast, sx, sy)
                if first_order:
                    g = {k: v.detach() for k, v in g.items()}
                fast = {k: fast[k] - lr * g[k] for k in names}
            return loss_at(fast, qx, qy)

        def meta_loss(params, sx, sy, qx, qy):
            return vmap(one_task, in_dims=(None, 0, 0, 0, 0))(params, sx, sy, qx, qy).mean()

        meta_grad = grad(meta_loss)

        def step():
            b = batches[state["i"] % len(batches)]
            state["i"] += 1
            params = {k: v.detach() for k, v in net.named_parameters()}
            grads = meta_grad(params, b["support_x"], b["support_y"], b["query_x"], b["query_y"])
            for n, p in net.named_parameters():
                p.grad = grads[n]
            optimizer.step()

    else:
        from learn2learn.algorithms.maml import MAML

        maml = MAML(net, lr=lr, first_order=first_order)

        def step():
            b = batches[state["i"] % len(batches)]
            state["i"] += 1
            optimizer.zero_grad()
            for t in range(tasks):
                learner = maml.clone()
                for _ in range(steps):
                    learner.adapt(task_loss(learner(b["support_x"][t]), b["support_y"][t]))
                (task_loss(learner(b["query_x"][t]), b["query_y"][t]) / tasks).backward()
            optimizer.step()

    def sync():
        if device == "gpu":
            torch.cuda.synchronize()

    def peak_mib():
        if device == "gpu":
            return torch.cuda.max_memory_allocated() / 2**20
        return None

    return step, sync, peak_mib


def import_learn2learn_core():
    """Makes `learn2learn.algorithms.maml` importable without the package's
    __init__ (which imports its vision, gym and text modules and so
    torchvision and gym, not needed here)."""
    import importlib.util
    import types

    spec = importlib.util.find_spec("learn2learn")
    if spec is None:
        raise SystemExit("learn2learn is not installed: run benchmarks/setup_peers.sh")
    root = spec.submodule_search_locations[0]
    for package, path in (("learn2learn", root), ("learn2learn.algorithms", os.path.join(root, "algorithms"))):
        module = types.ModuleType(package)
        module.__path__ = [path]
        sys.modules[package] = module


# ---------------------------------------------------------------- worker
def worker(framework, name, device, threads):
    """Serves timing requests on stdin: `run SECONDS`, `mem`, `quit`."""
    if framework == "fewshot parallel":
        # One thread per op, one op per core at once: the two tasks of a chunk
        # run side by side (`threads` cores, or all of them).
        from fewshot.threads import set_task_parallel_threads

        set_task_parallel_threads(threads or None)
    elif threads:
        if framework.startswith("fewshot"):
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        else:
            import torch

            torch.set_num_threads(threads)
            torch.set_num_interop_threads(threads)
    if framework.startswith("fewshot"):
        step, sync, peak = build_fewshot(
            name, device, xla=framework.endswith("+XLA"),
            vectorize=not framework.startswith(
                ("fewshot task loop", "fewshot chunked", "fewshot parallel")),
            fit=framework.startswith("fewshot fit"),
            tasks_per_chunk={"fewshot chunked": 1, "fewshot parallel": 2}.get(
                framework.removesuffix("+XLA")),
        )
    else:
        if framework == "learn2learn":
            import_learn2learn_core()
        step, sync, peak = build_torch(name, device, framework)
    for _ in range(2):  # trace, compile, warm up
        step()
    sync()
    print("READY", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "run":
            budget, count = float(command[1]), 0
            start = time.perf_counter()
            while True:
                count += step() or 1  # a `fit` call runs several meta-steps
                sync()
                elapsed = time.perf_counter() - start
                if elapsed >= budget:
                    break
            print(f"RATE {count / elapsed}", flush=True)
        elif command[0] == "mem":
            gpu = peak()
            if gpu is None:
                with open("/proc/self/status") as status:
                    gpu = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024
            print(f"MEM {gpu}", flush=True)
        else:
            break


class Worker:
    def __init__(self, framework, name, device, threads):
        python = sys.executable if framework.startswith("fewshot") else PEERS_PYTHON
        self.process = subprocess.Popen(
            [python, os.path.abspath(__file__), "--worker", framework, name, "--device", device,
             "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self.expect("READY")

    def expect(self, tag):
        for line in self.process.stdout:
            if line.startswith(tag):
                return line.split()[1:] if len(line.split()) > 1 else []
        raise RuntimeError(f"worker exited with {self.process.wait()}")

    def ask(self, command, tag):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return float(self.expect(tag)[0])

    def close(self):
        try:
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
            self.process.wait(timeout=60)
        except Exception:
            self.process.kill()


def matmul_flops_per_second(device, size=2048, repeats=10):
    """The machine's float32 matmul rate, from a large TensorFlow matmul."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    tf.linalg.matmul(a, b).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        rates.append(2 * size**3 / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def paired_ratio(rates, reference):
    """Median over rounds of rate / reference rate in the same round.

    The rounds interleave the frameworks, so a ratio within one round sees
    about the same machine load on both sides; the median of those ratios is
    steadier on a shared machine than the ratio of the two medians.
    """
    return statistics.median(r / q for r, q in zip(rates, reference))


def print_table(results, peak_rate):
    """The markdown table: rates, paired ratios to the peers, memory, peak share."""
    print("| workload | framework | meta-steps/s | this / torch.func | this / learn2learn "
          "| peak memory MiB | % of matmul peak |")
    print("|---|---|---|---|---|---|---|")
    for name, by_framework in results.items():
        flops = meta_step_flops(name)
        for framework, r in by_framework.items():
            ratios = []
            for peer in ("torch.func", "learn2learn"):
                reference = by_framework.get(peer)
                ratios.append(f"{paired_ratio(r['rates'], reference['rates']):.2f}x"
                              if reference and peer != framework else "-")
            fraction = 100 * r["median"] * flops / peak_rate
            print(f"| {name} | {framework} | {r['median']:.3g} | {ratios[0]} | {ratios[1]} "
                  f"| {r['peak_mib']:.0f} | {fraction:.1f}% |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median reported)")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per worker per round")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="where every framework runs (default cpu)")
    parser.add_argument("--workloads", nargs="+", default=DEFAULT_WORKLOADS, choices=list(WORKLOADS), metavar="NAME",
                        help=f"workloads to time, of {list(WORKLOADS)} (default all but the -1query ones)")
    parser.add_argument("--frameworks", nargs="+", choices=list(FRAMEWORKS),
                        default=[f for f in FRAMEWORKS if not f.startswith(
                            ("fewshot task loop", "fewshot chunked", "fewshot parallel"))],
                        help="fewshot: train_on_batch per meta-step, tasks vectorised; fewshot fit: "
                             f"Keras fit with steps_per_execution={FIT_STEPS}; +XLA: jit_compile; "
                             "task loop: vectorize=False; chunked: vectorize=False, tasks_per_chunk=1 "
                             "(meta-gradient accumulated task by task); parallel: vectorize=False, "
                             "tasks_per_chunk=2 and fewshot.threads.set_task_parallel_threads (one "
                             "thread per op, one op per core: the chunk's two tasks side by side)")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra- and inter-op threads of every framework (0: each one's default; "
                             "fewshot parallel: 1 intra-op and this many inter-op threads, 0: one per core)")
    parser.add_argument("--json", help="also write the measurements to this file")
    parser.add_argument("--from-json", metavar="FILE", help="print the table of an earlier --json run")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker[0], args.worker[1], args.device, args.threads)
    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        return print_table(saved["results"], saved["matmul_peak_flops"])

    peak_rate, median_rate = matmul_flops_per_second(args.device)
    print(f"float32 matmul 2048^3 in TensorFlow: best {peak_rate / 1e9:.1f} GFLOP/s, "
          f"median {median_rate / 1e9:.1f} GFLOP/s", file=sys.stderr, flush=True)
    results = {}
    for name in args.workloads:
        model = WORKLOADS[name][0]
        frameworks = [f for f in args.frameworks if f not in MLP_ONLY or model == "mlp"]
        workers = {}
        try:
            for framework in frameworks:
                print(f"[{name}] starting {framework}", file=sys.stderr, flush=True)
                workers[framework] = Worker(framework, name, args.device, args.threads)
            rates = {f: [] for f in workers}
            for round_ in range(args.rounds):
                order = list(workers) if round_ % 2 == 0 else list(reversed(workers))
                for framework in order:
                    rates[framework].append(workers[framework].ask(f"run {args.seconds}", "RATE"))
                print(f"[{name}] round {round_ + 1}: " + ", ".join(
                    f"{f} {r[-1]:.3f}" for f, r in rates.items()), file=sys.stderr, flush=True)
            for framework, worker_ in workers.items():
                results.setdefault(name, {})[framework] = {
                    "rates": rates[framework],
                    "median": statistics.median(rates[framework]),
                    "peak_mib": worker_.ask("mem", "MEM"),
                }
        finally:
            for worker_ in workers.values():
                worker_.close()

    print(f"\nMAML meta-steps/s, side by side; {platform.machine()}, {os.cpu_count()} CPUs, "
          f"device {args.device}, threads {args.threads or 'default'}; median of {args.rounds} "
          f"interleaved rounds of >= {args.seconds:g} s; "
          f"float32 matmul peak {peak_rate / 1e9:.1f} GFLOP/s (TensorFlow, 2048^3, this run)\n")
    print_table(results, peak_rate)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"matmul_peak_flops": peak_rate, "matmul_median_flops": median_rate,
                       "meta_step_flops": {n: meta_step_flops(n) for n in results},
                       "results": results, "device": args.device}, f, indent=1)


if __name__ == "__main__":
    main()
