"""The drug-property recipe: few-shot assay prediction from SMILES.

Loads a MoleculeNet-format CSV (Tox21 by default), featurises the molecules
with RDKit Morgan fingerprints, meta-trains a prototypical network, a Siamese
network, MAML and ANIL on 2-way episodes of the training assays (with early
stopping on validation assays), pretrains a multi-task network for the
fine-tuning baseline, and evaluates every method together with a random
forest and a kNN fitted on the support set alone, on the few-shot Tox21
protocol: for each test assay, 20 supports of 10 actives + 10 inactives (and
1 + 1), the query being every other molecule measured for the assay.
"""

import json
import pathlib
import time

import keras
import numpy as np

from fewshot.algorithms.fine_tuner import FineTuner, pretrain_multitask
from fewshot.algorithms.maml import MAML
from fewshot.callbacks import TimeBudget
from fewshot.datasets.assays import (
    AssaySampler,
    assay_scores,
    evaluate_assays,
    short_of_supports,
    summarize_draws,
)
from fewshot.datasets.featurize import Featurizer, featurize_table, write_report
from fewshot.datasets.graph_features import GraphFeaturizer, max_atoms_of
from fewshot.datasets.moleculenet import TOX21_URL, load_moleculenet, split_tasks
from fewshot.models.fingerprint import fingerprint_encoder
from fewshot.models.graph import gin_encoder
from fewshot.predict_molecules import save_molecule_model
from fewshot.recipes.console import say
from fewshot.recipes.results import markdown_table, write_results

METHODS = (
    "protonet", "siamese", "maml", "anil", "pretrained_finetune",
    "protonet_gin", "maml_gin", "anil_gin", "pretrained_finetune_gin",
    "random_forest", "knn", "ensemble",
)
META_METHODS = ("protonet", "siamese", "maml", "anil")
# Methods named ``<method>_gin`` are <method> with a graph isomorphism network
# over RDKit molecular graphs (`fewshot.models.gin_encoder`) instead of the
# fingerprint MLP; their settings are in their own recipe section.
GIN_SUFFIX = "_gin"


_VALIDATION_SEED = 7_000_001
_TEST_SEED = 0


def base_method(method):
    """``"maml"`` for ``"maml_gin"``; the name itself otherwise."""
    return method[: -len(GIN_SUFFIX)] if method.endswith(GIN_SUFFIX) else method


def add_arguments(parser):
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the CSV (for Tox21: tox21.csv.gz), or the CSV file "
        "itself; default: download the publisher's file into the cache",
    )
    parser.add_argument("--data", default=None, help="a CSV path or URL (overrides --data-dir)")
    parser.add_argument(
        "--test-tasks",
        default=None,
        help="held-out test tasks: comma-separated names or last:N (default: the "
        "Tox21 protocol SR-HSE,SR-MMP,SR-p53 on Tox21)",
    )
    parser.add_argument(
        "--validation-tasks",
        default=None,
        help="validation tasks carved from the training tasks: a count (taken "
        "from the end) or comma-separated names (default 2)",
    )
    parser.add_argument(
        "--methods", default=None, help=f"comma-separated subset of {','.join(METHODS)}"
    )
    parser.add_argument("--draws", type=int, default=None, help="support draws per test task (20)")
    parser.add_argument(
        "--budget-scale",
        type=float,
        default=1.0,
        help="multiply every training time budget and epoch count (0.1 for a smoke run)",
    )
    parser.add_argument("--descriptors", action="store_true", help="append RDKit 2D descriptors")
    parser.add_argument("--cache-dir", default=None, help="feature/download cache (default ~/.cache/fewshot)")


def _check_evaluation_tasks(split, index, labels, shots):
    """Fails before any training if a validation or test task cannot give `shots`-shot draws."""
    for kind, option in (("validation", "validation_tasks"), ("test", "test_tasks")):
        for name, column in zip(split[kind], index[kind]):
            short = short_of_supports(labels[:, column], shots)
            if short:
                actives, inactives = short
                raise ValueError(
                    f"Invalid value received for `{option}`: the {kind} task {name!r} has "
                    f"{actives} actives and {inactives} inactives (valid molecules), too few "
                    f"for supports of {shots} of each plus a query holding both. Received: "
                    f"shots={shots}"
                )


def run(config, args):
    """Trains, evaluates and writes results.json, results.md and roc.png to ``args.out``."""
    settings = _settings(config, args)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    verbose = 0 if args.quiet else 2
    seed = settings["seed"]
    start_all = time.perf_counter()

    source = _data_source(settings, args)
    table = load_moleculenet(source, cache_dir=args.cache_dir)
    split = split_tasks(table, settings["test_tasks"], settings["validation_tasks"])
    featurizer = Featurizer(**settings["features"])
    molecules = featurize_table(table, featurizer, cache_dir=args.cache_dir)
    write_report(molecules.report, out)
    say(args, _data_summary(table, molecules, split))
    index = {k: [molecules.task_index(t) for t in v] for k, v in split.items()}
    y = molecules.labels
    _check_evaluation_tasks(split, index, y, max(settings["eval"]["shots"]))
    featurizers = {"fingerprint": featurizer}
    inputs = {"fingerprint": molecules.features}
    if any(m.endswith(GIN_SUFFIX) for m in settings["methods"]):
        featurizers["graph"], inputs["graph"] = _graph_inputs(table, molecules, settings, args)
        settings["graph_features"] = featurizers["graph"].get_config()  # "auto" resolved
        say(args, f"molecular graphs: {featurizers['graph'].get_config()}")

    def evaluate(score_fns, tasks, draws, seed_, on_draw=None, max_query=None, x=None):
        x = inputs["fingerprint"] if x is None else x
        results = {}
        for shots, score_fn in score_fns.items():
            callback = (lambda t, d, yt, s, k=shots: on_draw(k, t, d, yt, s)) if on_draw else None
            results[shots] = evaluate_assays(
                score_fn, x, y, tasks, shots, draws, seed_, callback, max_query=max_query
            )
        return results

    def validation_scorer(x):
        def validation_score(score_fns):
            """``(mean ROC-AUC over the shot counts, {shots: [(y_true, scores, task)]})``."""
            draws = settings["eval"]["validation_draws"]
            pooled = {k: [] for k in score_fns}

            def keep(shots, task, draw, y_true, scores):
                pooled[shots].append((y_true, scores, task))

            results = evaluate(
                score_fns, index["validation"], draws, seed + _VALIDATION_SEED, keep,
                max_query=settings["eval"]["validation_max_query"], x=x,
            )
            return float(np.mean([r["summary"]["roc_auc"][0] for r in results.values()])), pooled

        return validation_score

    methods = settings["methods"]
    shots_list = settings["eval"]["shots"]
    metrics, timings, curves, trained, validation = {}, {}, {}, {}, {}
    validation_curves = {}  # method -> its best validation draws, for choosing the ensemble
    for method in methods:
        if method == "ensemble":
            continue
        say(args, f"\n== {method} ==")
        kind = "graph" if method.endswith(GIN_SUFFIX) else "fingerprint"
        x = inputs[kind]
        started = time.perf_counter()
        score_fns, learner, best, best_draws = _train_method(
            method, settings, x, y, index, validation_scorer(x), shots_list, verbose, seed
        )
        timings[method] = round(time.perf_counter() - started, 1)
        if best is not None:
            validation[method] = round(best, 2)
            validation_curves[method] = best_draws
        if learner is not None:
            trained[method] = learner
            save_molecule_model(
                learner, featurizers[kind], out / "models" / method, method,
                _adapt_steps(method, settings),
            )
        pooled = {k: [] for k in shots_list}

        def on_draw(shots, task, draw, y_true, scores):
            pooled[shots].append((y_true, scores, task))

        started = time.perf_counter()
        results = evaluate(
            score_fns, index["test"], settings["eval"]["draws"], seed + _TEST_SEED, on_draw, x=x)
        timings[method + "_eval"] = round(time.perf_counter() - started, 1)
        metrics[method] = {}
        for shots, result in results.items():
            metrics[method][f"roc_auc_{shots}shot"] = result["summary"]["roc_auc"]
            metrics[method][f"delta_auprc_{shots}shot"] = result["summary"]["delta_auprc"]
            for metric in ("roc_auc", "delta_auprc"):
                for task, values in result[metric].items():
                    metrics[method][f"{metric}_{shots}shot_{molecules.tasks[task]}"] = (
                        float(np.mean(values)), None)
        curves[method] = pooled
        say(args, "  test: " + ", ".join(
            f"{k}={v[0]:.3f}" for k, v in metrics[method].items() if k.count("_") <= 3
        ) + f"  ({timings[method]} s train, {timings[method + '_eval']} s eval)")

    if "ensemble" in methods:
        members = _ensemble_members(settings, validation, validation_curves, molecules.tasks)
        if len(members) >= 2:
            by_size = settings["ensemble"].get("validation_roc_auc_by_size")
            chosen = f"; validation ROC-AUC by size: {by_size}" if by_size else ""
            say(args, f"\n== ensemble of {members} (best validation ROC-AUC{chosen}) ==")
            metrics["ensemble"], curves["ensemble"] = ensemble_metrics(
                [curves[m] for m in members], molecules.tasks)
            settings["ensemble"]["members"] = members
        else:
            methods = [m for m in methods if m != "ensemble"]
    methods = [m for m in methods if m in metrics]
    names = [f"{m}_{k}shot" for k in shots_list for m in ("roc_auc", "delta_auprc")]
    table_md = markdown_table(metrics, names, methods, fmt="{:.3f}")
    run_config = dict(
        settings,
        data=str(table.source),
        split=split,
        molecules=molecules.report["molecules"],
        invalid_smiles=len(molecules.report["invalid"]),
        duplicate_groups=len(molecules.report["duplicates"]),
        validation_roc_auc=validation,
        seconds=dict(timings, total=round(time.perf_counter() - start_all, 1)),
    )
    dataset = f"{table.name} ({len(table.tasks)} tasks, {molecules.report['molecules']} molecules)"
    write_results(out, "drug_property", dataset, run_config, metrics)
    per_task = _per_task_table(metrics, methods, split["test"], shots_list)
    (out / "results.md").write_text(
        f"Few-shot assay prediction on {dataset}; test tasks {', '.join(split['test'])}; "
        f"{settings['eval']['draws']} support draws per task. ROC-AUC in percent, "
        "delta-AUPRC = AUPRC minus the query's fraction of actives; mean over test tasks "
        "± 95% interval over all draws.\n\n" + table_md + "\n\nPer test task (mean over draws):\n\n"
        + per_task + "\n"
    )
    plot_roc(curves, out / "roc.png", shots=max(shots_list), title=f"{table.name}: test tasks")
    print(f"\n{table_md}\n\nWrote {out / 'results.json'}, results.md, roc.png, models/ "
          f"({run_config['seconds']['total']:.0f} s in all)")
    return metrics


# ---------------------------------------------------------------- settings
def _settings(config, args):
    settings = json.loads(json.dumps(config))  # a deep copy
    settings.setdefault("seed", 0)
    data = settings.setdefault("data", {})
    eval_ = settings.setdefault("eval", {})
    settings["test_tasks"] = args.test_tasks or data.get("test_tasks") or None
    validation = args.validation_tasks if args.validation_tasks is not None else data.get("validation_tasks", 2)
    if isinstance(validation, str) and validation.strip().isdigit():
        validation = int(validation)
    settings["validation_tasks"] = validation
    features = settings.setdefault("features", {})
    settings.setdefault("graph_features", {})
    if args.descriptors:
        features["descriptors"] = True
    if args.draws is not None:
        if args.draws < 1:
            raise ValueError(f"Invalid value received for argument `--draws`. Expected a positive integer. Received: {args.draws}")
        eval_["draws"] = args.draws
    eval_.setdefault("draws", 20)
    eval_.setdefault("validation_draws", 5)
    eval_.setdefault("validation_max_query", 1000)
    settings.setdefault("refit", True)
    eval_.setdefault("shots", [10, 1])
    methods = args.methods.split(",") if args.methods else settings.get("methods", list(METHODS))
    methods = [m.strip() for m in methods if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(
            f"Invalid value received for argument `--methods`: unknown {unknown}. "
            f"Known: {list(METHODS)}. Received: {args.methods!r}"
        )
    settings["methods"] = methods
    size = settings.setdefault("ensemble", {}).setdefault("size", 3)
    if size != "validation" and not (isinstance(size, int) and not isinstance(size, bool) and size >= 2):
        raise ValueError(
            "Invalid value received for the recipe's [ensemble] size: expected an integer "
            f">= 2 or \"validation\". Received: size={size!r}"
        )
    if not args.budget_scale > 0:
        raise ValueError(
            "Invalid value received for argument `--budget-scale`. Expected a "
            f"positive float. Received: {args.budget_scale}"
        )
    settings["budget_scale"] = args.budget_scale
    return settings


def _data_source(settings, args):
    if args.data:
        return args.data
    name = settings["data"].get("file", "tox21.csv.gz")
    if args.data_dir:
        path = pathlib.Path(args.data_dir)
        return path / name if path.is_dir() and (path / name).is_file() else path
    return settings["data"].get("url", TOX21_URL)


def _scaled(settings, section, key):
    value = settings[section][key]
    return max(1, int(round(value * settings["budget_scale"])))


def _adapt_steps(method, settings):
    if base_method(method) in ("maml", "anil"):
        return settings[method].get("eval_inner_steps", settings[method]["inner_steps"])
    if base_method(method) == "pretrained_finetune":
        return settings[method]["finetune_steps"]
    return None


def _graph_inputs(table, molecules, settings, args):
    """``(GraphFeaturizer, rows [M, dim])`` of the same molecules, in the same
    order, as the fingerprints (so every method sees the same draws).

    ``max_atoms`` / ``max_degree`` of ``"auto"`` (the default) are the
    largest in the file, so no molecule is excluded for its size; a number
    smaller than a molecule of the file is an error naming that molecule.
    """
    g = dict(settings["graph_features"])
    largest = None
    if g.get("max_atoms", "auto") == "auto" or g.get("max_degree", "auto") == "auto":
        largest = max_atoms_of(molecules.smiles)
    if g.get("max_atoms", "auto") == "auto":
        g["max_atoms"] = largest[0]
    if g.get("max_degree", "auto") == "auto":
        g["max_degree"] = largest[1]
    graph_featurizer = GraphFeaturizer(**g)
    graphs = featurize_table(table, graph_featurizer, cache_dir=args.cache_dir)
    if graphs.smiles != molecules.smiles:
        excluded = {item["row"] for item in molecules.report["invalid"]}
        detail = "; ".join(
            f"{item['smiles']!r} ({item['reason']})" for item in graphs.report["invalid"]
            if item["row"] not in excluded)
        raise ValueError(
            "Invalid value received for the recipe's [graph_features]: molecules with "
            "valid fingerprints do not fit the graph rows, so the graph methods would be "
            f"evaluated on other molecules (use \"auto\"): {detail}. "
            f"Received: {dict(settings['graph_features'])}"
        )
    return graph_featurizer, graphs.features


# ------------------------------------------------------------------ methods
def _train_method(method, settings, x, y, index, validation_score, shots_list, verbose, seed):
    """Returns ``({shots: score_fn}, learner_or_None, best_validation_or_None)``."""
    if method == "random_forest":
        return {k: random_forest_scorer(settings["random_forest"], seed) for k in shots_list}, None, None, None
    if method == "knn":
        ks = settings["knn"]
        return ({k: knn_scorer(ks["k_10shot"] if k >= 10 else ks["k_1shot"]) for k in shots_list},
                None, None, None)
    keras.utils.set_random_seed(seed)
    if base_method(method) == "pretrained_finetune":
        learner, best, draws = train_finetuner(
            settings, x, y, index, validation_score, shots_list, verbose, seed, method=method)
    else:
        learner, best, draws = train_meta_learner(
            method, settings, x, y, index, validation_score, shots_list, verbose, seed)
    steps = _adapt_steps(method, settings)
    return ({k: learner_scorer(learner, steps) for k in shots_list},
            learner, best, draws)


def build_encoder(method, settings, input_dim, outputs, dropout, name=None):
    """The fingerprint MLP, or for ``*_gin`` methods the GIN, of `method`.

    GIN settings (in the method's section): ``units``, ``depth``, ``hidden``
    (Dense layers after the graph embedding), ``edge_features``,
    ``pooling``, ``fingerprint_units``; the row layout comes from
    ``settings["graph_features"]`` (resolved by the runner).
    """
    s = settings[method]
    if not method.endswith(GIN_SUFFIX):
        return fingerprint_encoder(input_dim, s["hidden"], outputs, dropout, name=name or "fingerprint_encoder")
    g = settings["graph_features"]
    return gin_encoder(
        g["max_atoms"], g.get("max_degree", 6), units=s.get("units", 128), depth=s.get("depth", 3),
        embedding=outputs, hidden=s.get("hidden", ()), dropout=dropout,
        fingerprint_size=g.get("fingerprint_size", 0), fingerprint_units=s.get("fingerprint_units", 512),
        edge_features=s.get("edge_features", False), pooling=s.get("pooling", "mean"),
        name=name or "gin_encoder",
    )


def build_learner(method, settings, input_dim):
    """The untrained learner of `method` with the recipe's settings."""
    import fewshot.algorithms as algorithms

    s = settings[method]
    base = base_method(method)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if base in ("protonet", "siamese"):
        encoder = build_encoder(method, settings, input_dim, s["embedding"], s.get("dropout", 0.0))
        if base == "protonet":
            learner = algorithms.PrototypicalNetwork(encoder, distance=s.get("distance", "euclidean"))
        else:
            learner = algorithms.SiameseNetwork(encoder, margin=s.get("margin", 1.0))
    elif base in ("maml", "anil"):
        backbone = build_encoder(method, settings, input_dim, 2, 0.0, name=f"{method}_backbone")
        learner = MAML(
            backbone,
            inner_lr=s["inner_lr"],
            inner_steps=s["inner_steps"],
            first_order=s.get("first_order", False),
            adapt_layers=["head"] if base == "anil" else None,
            # The GIN's disjoint union of atoms has a data-dependent size,
            # which tf.vectorized_map cannot stack: a loop over the tasks.
            vectorize=not method.endswith(GIN_SUFFIX),
        )
    else:
        raise ValueError(f"Unknown method {method!r}")
    learner.compile(optimizer=keras.optimizers.Adam(s["lr"]), loss=loss, metrics=["accuracy"])
    return learner


def train_meta_learner(method, settings, x, y, index, validation_score, shots_list, verbose, seed):
    """Meta-trains one learner on 2-way episodes of the training assays."""
    s = settings[method]
    learner = build_learner(method, settings, x.shape[1])
    sampler = AssaySampler(x, y, index["train"], shots=s.get("shots", 10), queries=s.get("queries", 16))
    stream = sampler.stream(s["meta_batch_size"], s["batches_per_epoch"], seed=seed)
    steps = _adapt_steps(method, settings)
    stopper = ValidationEarlyStopping(
        lambda: validation_score(
            {k: learner_scorer(learner, steps) for k in shots_list}),
        weights_of=learner,
        patience=s.get("patience", 5),
        time_budget_s=s["time_budget_s"] * settings["budget_scale"],
        verbose=verbose,
    )
    learner.fit(stream, epochs=_scaled(settings, method, "epochs"), callbacks=[stopper], verbose=0)
    if not (settings["refit"] and index["validation"] and stopper.best_epoch):
        return learner, stopper.best, stopper.best_details
    # Refit: the epoch count chosen on validation, on all training assays.
    keras.utils.set_random_seed(seed)
    learner = build_learner(method, settings, x.shape[1])
    sampler = AssaySampler(
        x, y, index["train"] + index["validation"], shots=s.get("shots", 10), queries=s.get("queries", 16)
    )
    stream = sampler.stream(s["meta_batch_size"], s["batches_per_epoch"], seed=seed)
    _say_verbose(verbose, f"  refit on training + validation assays for {stopper.best_epoch} epochs")
    learner.fit(
        stream, epochs=stopper.best_epoch, verbose=0,
        callbacks=[TimeBudget(s["time_budget_s"] * settings["budget_scale"])],
    )
    return learner, stopper.best, stopper.best_details


def train_finetuner(settings, x, y, index, validation_score, shots_list, verbose, seed,
                    method="pretrained_finetune"):
    """Pretrains an encoder on all training assays, wraps it in a `FineTuner`."""
    s = settings[method]
    tuner, stopper = _pretrain(
        settings, x, y, index["train"], validation_score, shots_list, verbose, seed, method=method)
    best, draws = stopper.best, stopper.best_details
    grid = s.get("finetune_grid") or []
    if grid and index["validation"]:
        # Fine-tuning steps and step size: chosen on the validation assays.
        scores, grid_draws = {}, {}
        for steps, lr in grid:
            tuner.finetune_steps, tuner.learning_rate = int(steps), float(lr)
            key = (int(steps), float(lr))
            scores[key], grid_draws[key] = validation_score(
                {k: learner_scorer(tuner) for k in shots_list}
            )
        (steps, lr), best = max(scores.items(), key=lambda item: item[1])
        draws = grid_draws[(steps, lr)]
        s["finetune_steps"], s["finetune_lr"] = steps, lr
        tuner.finetune_steps, tuner.learning_rate = steps, lr
        _say_verbose(verbose, "  fine-tuning (steps, lr) on validation: " + ", ".join(
            f"{k}: {v:.2f}" for k, v in scores.items()) + f" -> {(steps, lr)}")
    if not (settings["refit"] and index["validation"] and stopper.best_epoch):
        return tuner, best, draws
    _say_verbose(verbose, f"  refit on training + validation assays for {stopper.best_epoch} epochs")
    tuner, _ = _pretrain(
        settings, x, y, index["train"] + index["validation"], None, shots_list, verbose, seed,
        epochs=stopper.best_epoch, method=method,
    )
    return tuner, best, draws


def _pretrain(settings, x, y, tasks, validation_score, shots_list, verbose, seed, epochs=None,
              method="pretrained_finetune"):
    keras.utils.set_random_seed(seed)
    s = settings[method]
    encoder = build_encoder(method, settings, x.shape[1], s["embedding"], s.get("dropout", 0.0))
    tuner = FineTuner(
        encoder,
        finetune_steps=s["finetune_steps"],
        learning_rate=s["finetune_lr"],
        head_init=s.get("head_init", "prototypes"),
    )
    tuner.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rows = np.flatnonzero(~np.isnan(y[:, tasks]).all(axis=1))
    budget = s["time_budget_s"] * settings["budget_scale"]
    if validation_score is None:
        stopper = TimeBudget(budget)
    else:
        stopper = ValidationEarlyStopping(
            lambda: validation_score(
                {k: learner_scorer(tuner) for k in shots_list}),
            weights_of=tuner,
            patience=s.get("patience", 5),
            time_budget_s=budget,
            verbose=verbose,
        )
    pretrain_multitask(
        tuner,
        x[rows],
        y[rows][:, tasks],
        epochs=epochs or _scaled(settings, method, "epochs"),
        batch_size=s["batch_size"],
        learning_rate=s["lr"],
        callbacks=[stopper],
        seed=seed,
    )
    return tuner, stopper


class ValidationEarlyStopping(keras.callbacks.Callback):
    """Keeps the weights with the best few-shot validation score.

    After every epoch, scores the model on the validation assays, remembers
    the weights of the best epoch, stops after `patience` epochs without
    improvement or once `time_budget_s` seconds have passed, and restores the
    best weights at the end of training.

    Args:
        score_fn: a function of no arguments returning the validation score
            (higher is better), or ``(score, details)``; the details of the
            best epoch are kept as `best_details` (here: the validation draws,
            from which the ensemble is chosen).
        weights_of: the model (or layer) whose weights are kept and restored.
        patience: epochs without improvement before stopping.
        time_budget_s: wall-clock budget of the whole training.
        verbose: print the score after each epoch when > 0.
    """

    def __init__(self, score_fn, weights_of, patience=5, time_budget_s=None, verbose=0):
        super().__init__()
        self.score_fn = score_fn
        self.weights_of = weights_of
        self.patience = patience
        self.time_budget_s = time_budget_s
        self.verbose = verbose
        self.best = None
        self.best_epoch = None
        self.best_details = None
        self.history = []

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        self._best_weights = None
        self._waited = 0

    def on_epoch_end(self, epoch, logs=None):
        score, details = self.score_fn(), None
        if isinstance(score, tuple):
            score, details = score
        elapsed = time.perf_counter() - self._start
        self.history.append((epoch + 1, round(score, 3), round(elapsed, 1)))
        if self.best is None or score > self.best:
            self.best, self.best_epoch, self.best_details = score, epoch + 1, details
            self._best_weights = self.weights_of.get_weights()
            self._waited = 0
        else:
            self._waited += 1
        if self.verbose:
            loss = (logs or {}).get("loss")
            print(f"  epoch {epoch + 1}: loss {loss if loss is None else round(float(loss), 4)} "
                  f"validation ROC-AUC {score:.2f} (best {self.best:.2f} at {self.best_epoch}) "
                  f"{elapsed:.0f} s", flush=True)
        if self._waited >= self.patience or (
            self.time_budget_s is not None and elapsed > self.time_budget_s
        ):
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self._best_weights is not None:
            self.weights_of.set_weights(self._best_weights)


# ------------------------------------------------------------------ scorers
def learner_scorer(learner, steps=None, batch_size=None):
    """``score_fn`` of a meta-learner: adapt on the support, score the queries.

    The score is the logit margin ``logit_active - logit_inactive`` of the
    learner adapted to the support (`MetaLearner.predict_task`, in slices of
    `batch_size`, default the learner's `query_batch_size`).
    """

    def score(support_x, support_y, query_x):
        logits = learner.predict_task(support_x, support_y, query_x, steps=steps,
                                      batch_size=batch_size)
        return logits[:, 1] - logits[:, 0]

    return score


def random_forest_scorer(settings, seed=0):
    """A random forest on the support's fingerprint bits (present/absent)."""
    from sklearn.ensemble import RandomForestClassifier

    def score(support_x, support_y, query_x):
        forest = RandomForestClassifier(
            n_estimators=settings.get("n_estimators", 100), random_state=seed, n_jobs=1
        )
        forest.fit(support_x > 0, support_y)
        return forest.predict_proba(query_x > 0)[:, 1]

    return score


def knn_scorer(k):
    """kNN on the support with the Jaccard (Tanimoto) distance of fingerprint bits.

    The score is the fraction of actives among the `k` nearest support
    molecules, ties broken by the mean similarity to the actives minus that
    to the inactives (a small term, so the vote decides).
    """

    def score(support_x, support_y, query_x):
        s = (support_x > 0).astype(np.float32)
        q = (query_x > 0).astype(np.float32)
        inter = q @ s.T
        union = q.sum(1, keepdims=True) + s.sum(1)[None, :] - inter
        sim = inter / np.maximum(union, 1.0)
        kk = min(k, len(support_y))
        nearest = np.argsort(-sim, axis=1, kind="stable")[:, :kk]
        vote = np.asarray(support_y)[nearest].mean(1)
        active = np.asarray(support_y) == 1
        tie = sim[:, active].mean(1) - sim[:, ~active].mean(1)
        return vote + 1e-3 * tie

    return score


def _ensemble_members(settings, validation, validation_curves, task_names):
    """The networks averaged by the ensemble, best validation ROC-AUC first.

    ``[ensemble] size`` is a number of networks, or ``"validation"``: the
    ensembles of the best 2, 3, ... networks are scored on the validation
    draws (the same draws, scored by the networks trained without the
    validation assays, at their best epochs) and the best-scoring size is
    kept (the smaller on a tie); the scores go to ``config.ensemble``.
    """
    ranked = sorted(validation, key=validation.get, reverse=True)
    size = settings["ensemble"]["size"]
    if size != "validation":
        return ranked[: int(size)]
    scored = [m for m in ranked if validation_curves.get(m)]
    by_size = {}
    shots = list(validation_curves[scored[0]]) if scored else []
    for k in range(2, len(scored) + 1):
        metrics, _ = ensemble_metrics([validation_curves[m] for m in scored[:k]], task_names)
        by_size[k] = round(float(np.mean([metrics[f"roc_auc_{n}shot"][0] for n in shots])), 2)
    settings["ensemble"]["validation_roc_auc_by_size"] = by_size
    if not by_size:
        return scored
    best = max(by_size, key=lambda k: (by_size[k], -k))
    return scored[:best]


def ensemble_metrics(member_curves, task_names):
    """Metrics of the mean of z-scored member scores, draw by draw.

    Every method sees the same support draws (same seed), so draw ``i`` of
    each member scores the same query; each member's scores are standardised
    within the draw and averaged.

    Returns:
        ``(metrics, pooled)`` in the runner's formats.
    """
    metrics, pooled = {}, {}
    for shots in member_curves[0]:
        per = {"roc_auc": {}, "delta_auprc": {}}
        pooled[shots] = []
        for draws in zip(*(curve[shots] for curve in member_curves)):
            y_true, _, task = draws[0]
            z = [(s - s.mean()) / (s.std() + 1e-12) for _, s, _ in draws]
            scores = np.mean(z, axis=0)
            auc, dauprc = assay_scores(y_true, scores)
            per["roc_auc"].setdefault(task, []).append(auc)
            per["delta_auprc"].setdefault(task, []).append(dauprc)
            pooled[shots].append((y_true, scores, task))
        for metric, values in per.items():
            metrics[f"{metric}_{shots}shot"] = summarize_draws(values)
        for metric, values in per.items():
            for task, v in values.items():
                metrics[f"{metric}_{shots}shot_{task_names[task]}"] = (float(np.mean(v)), None)
    return metrics, pooled


# ------------------------------------------------------------------- output
def plot_roc(curves, path, shots, title=""):
    """Mean ROC curve over the test draws (threshold-averaged per draw), per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    grid = np.linspace(0.0, 1.0, 201)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for method, pooled in curves.items():
        draws = pooled.get(shots) or []
        if not draws:
            continue
        tprs = []
        for y_true, scores, _ in draws:
            fpr, tpr, _ = roc_curve(y_true, scores)
            tprs.append(np.interp(grid, fpr, tpr))
        ax.plot(grid, np.mean(tprs, 0), label=method)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{title} ({shots}+{shots} support, mean over draws)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _per_task_table(metrics, methods, tasks, shots_list):
    names = [f"roc_auc_{k}shot_{t}" for k in shots_list for t in tasks]
    lines = ["| method | " + " | ".join(n.replace("roc_auc_", "") for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for method in methods:
        cells = [f"{metrics[method][n][0]:.2f}" if n in metrics[method] else "" for n in names]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _data_summary(table, molecules, split):
    report = molecules.report
    return (
        f"{table.name}: {report['rows']} rows, {report['molecules']} molecules, "
        f"{len(report['invalid'])} invalid SMILES (listed in invalid_smiles.csv), "
        f"{len(report['duplicates'])} duplicate groups merged, "
        f"{report['label_conflicts']} conflicting labels left unmeasured\n"
        f"train tasks {split['train']}\nvalidation tasks {split['validation']}\n"
        f"test tasks {split['test']}"
    )


def _say_verbose(verbose, text):
    if verbose:
        print(text, flush=True)
