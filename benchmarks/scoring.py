"""Seconds to score one few-shot assay draw: `adapt(...)` then calling the model, or `predict_task`.

One draw of the drug-property recipe's test protocol: a support of 10 actives
and 10 inactives of SR-p53 (Tox21), fine-tuning on it, then scoring every other
molecule measured for that assay (about 6,700). The fine-tuners are built as
the recipe builds them (`recipes/drug_property/recipe.toml`; untrained
weights, the time does not depend on them; dropout off, so that every path
fine-tunes to the same weights and their logits can be compared):

- `GIN fine-tuner`: `pretrained_finetune_gin`, molecular graph rows.
- `MLP fine-tuner`: `pretrained_finetune`, 2048 Morgan counts.

Paths, alternating within each round (the table gives medians and ratios to
the first path, all measured in this one run):

- `adapt + call`: ``learner.adapt(sx, sy)`` (a Keras model built per draw),
  then the model called eagerly on slices of 2048 queries (the recipe's scorer
  until session 9);
- `predict_task b`: ``learner.predict_task(sx, sy, qx, batch_size=b)``: the
  fine-tuned weights stay in compiled graphs.

    python benchmarks/scoring.py --data-dir ../shared/data/tox21 [--rounds 5]

The Tox21 file is read from ``--data-dir`` (or ``$FEWSHOT_TOX21_DIR``); without
it the script says so and exits.
"""

import argparse
import os
import pathlib
import platform
import statistics
import sys
import time
import tomllib
import types

RECIPE = pathlib.Path(__file__).resolve().parent.parent / "recipes" / "drug_property" / "recipe.toml"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("FEWSHOT_TOX21_DIR"),
                        help="folder holding tox21.csv.gz (default: $FEWSHOT_TOX21_DIR)")
    parser.add_argument("--rounds", type=int, default=5, help="draws timed per path (default 5)")
    args = parser.parse_args(argv)
    path = pathlib.Path(args.data_dir or "") / "tox21.csv.gz"
    if not args.data_dir or not path.is_file():
        print(f"Tox21 not found (looked for {path}); pass --data-dir. Nothing measured.")
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    from fewshot.datasets import Featurizer, load_moleculenet
    from fewshot.datasets.assays import support_draws
    from fewshot.datasets.featurize import featurize_table
    from fewshot.recipes import drug_property as recipe

    config = tomllib.loads(RECIPE.read_text())
    table = load_moleculenet(path)
    molecules = featurize_table(table, Featurizer(**config["features"]))
    settings = dict(config, graph_features=dict(config["graph_features"]))
    graph_featurizer, graphs = recipe._graph_inputs(
        table, molecules, settings, types.SimpleNamespace(cache_dir=None))
    settings["graph_features"] = graph_featurizer.get_config()  # "auto" resolved
    # One draw of the recipe's test protocol (10 inactives then 10 actives).
    support, labels, query, _ = support_draws(
        molecules.labels[:, molecules.task_index("SR-p53")], shots=10, draws=1, seed=0)[0]
    learners = {}
    for name, method, x in (("GIN fine-tuner", "pretrained_finetune_gin", graphs),
                            ("MLP fine-tuner", "pretrained_finetune", molecules.features)):
        s = config[method]
        # Dropout off: every path then fine-tunes to the same weights, so
        # their logits can be compared (a mask costs nothing next to the GIN).
        encoder = recipe.build_encoder(method, settings, x.shape[1], s["embedding"], 0.0)
        learner = recipe.FineTuner(encoder, finetune_steps=s["finetune_steps"], learning_rate=s["finetune_lr"],
                                   head_init=s.get("head_init", "prior"))
        learners[name] = (learner, x)

    def adapt_and_call(learner, sx, sy, qx):
        model = learner.adapt(sx, sy)
        return np.concatenate([np.asarray(model(tf.constant(qx[i:i + 2048]), training=False))
                               for i in range(0, len(qx), 2048)])

    paths = {"adapt + call": adapt_and_call}
    for b in (2048, 512):
        paths[f"predict_task {b}"] = (
            lambda learner, sx, sy, qx, b=b: learner.predict_task(sx, sy, qx, batch_size=b))

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}; "
          f"{len(query)} query molecules, {args.rounds} rounds", flush=True)
    print("| model | path | s per draw (median) | vs adapt + call | max abs logit difference |")
    print("|---|---|---|---|---|")
    for name, (learner, x) in learners.items():
        sx, qx = x[support], x[query]
        reference = None
        times = {p: [] for p in paths}
        diffs = {p: 0.0 for p in paths}
        for p, fn in paths.items():  # warm-up: traces
            out = fn(learner, sx, labels, qx)
            reference = out if reference is None else reference
        for _ in range(args.rounds):
            for p, fn in paths.items():
                start = time.perf_counter()
                out = fn(learner, sx, labels, qx)
                times[p].append(time.perf_counter() - start)
                diffs[p] = max(diffs[p], float(np.abs(out - reference).max()))
        base = statistics.median(times["adapt + call"])
        for p in paths:
            t = statistics.median(times[p])
            print(f"| {name} | {p} | {t:.3f} | {base / t:.2f}x | {diffs[p]:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
