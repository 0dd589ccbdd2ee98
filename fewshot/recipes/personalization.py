"""The personalisation recipe: cold-start rating prediction on MovieLens.

Each user is a task (MeLU's protocol): users with 13..100 ratings, the last
10 ratings by time are the query set and the earlier ones the support set;
users split 70/10/20 into meta-train, validation and new-user test by seed.
Meta-learners (MAML adapting the decision layers as MeLU does, ANIL adapting
the head) are trained on episodes of the training users, early-stopped and
tuned on the validation users, and scored on the test users next to the
baselines: global mean, item mean, the user's support mean, the bias model
and the same network pretrained on all training ratings then fine-tuned on
each user's support set.
"""

import json
import os
import pathlib
import time

import keras
import numpy as np

from fewshot.algorithms.maml import MAML
from fewshot.algorithms.meta_sgd import MetaSGD
from fewshot.callbacks import TimeBudget
from fewshot.datasets.movielens import load_movielens, load_movielens_tfds
from fewshot.datasets.user_tasks import RatingFeatures, episode_stream, user_tasks
from fewshot.models.recommender import decision_layer_names, recommender
from fewshot.metrics import mean_ci95
from fewshot.model_catalog import write_ensemble_record
from fewshot.recipes.console import say
from fewshot.recipes.results import markdown_table, write_results
from fewshot.recsys.adapter import TaskPredictor, UserAdapter
from fewshot.recsys.baselines import BASELINES, BiasModel
from fewshot.recsys.ensemble import COMBINES, EnsembleAdapter
from fewshot.recsys.evaluation import summarize, user_scores

DATA_ENV = "FEWSHOT_MOVIELENS_DIR"
# The MAML family members a method may use (`algorithm = ...` in recipe.toml).
ALGORITHMS = {"maml": MAML, "meta_sgd": MetaSGD}
METRICS = ("mae", "rmse", "ndcg3")
RATING_RANGE = (1.0, 5.0)  # predictions of every method are clipped to the scale


def add_arguments(parser):
    parser.add_argument(
        "--data-dir",
        default=os.environ.get(DATA_ENV),
        help=f"MovieLens-100K or -1M folder (default ${DATA_ENV})",
    )
    parser.add_argument(
        "--tfds", action="store_true", help="read movielens/100k-ratings from TFDS instead"
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds of training per model trained, checked at epoch ends: each ensemble "
        "member and each pretrained network gets its own (overrides the recipe)",
    )
    parser.add_argument(
        "--extra-train-users",
        choices=["none", "heavy"],
        default=None,
        help="'heavy': also train every method (baselines included) on the users with more "
        "than max_ratings ratings, who are never validation or test users (default: the "
        "recipe's, 'none' = the MeLU/ANCHORS protocol)",
    )
    parser.add_argument(
        "--methods", default=None, help="comma-separated meta-learned methods (default: all)"
    )
    parser.add_argument(
        "--validation-only",
        action="store_true",
        help="train and choose on the validation users, write validation.json and stop: "
        "no test user is scored (for trying settings)",
    )


def run(config, args):
    """Trains, evaluates and writes results, table, plot and models to ``args.out``."""
    settings = _settings(config, args)
    out = pathlib.Path(args.out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    verbose = 0 if args.quiet else 2
    data = _load(args)
    features = RatingFeatures.from_movielens(data)
    tasks = user_tasks(data, features, **settings["data"])
    train, val, test = tasks.split(tuple(settings["split"]), seed=settings["seed"])
    if settings["extra_train_users"] == "heavy":
        # Users with more ratings than the task range are never new users; in
        # this variant their ratings join the training set of every method.
        heavy = user_tasks(data, features, settings["data"]["max_ratings"] + 1, 10**9,
                           settings["data"]["query_size"])
        train = train.concat(heavy)
        say(args, f"+ {len(heavy)} users with > {settings['data']['max_ratings']} ratings "
                   "as extra training users")
    say(args, f"{data}: {len(tasks)} eligible users -> {len(train)} train, "
               f"{len(val)} validation, {len(test)} test")
    _, train_items, train_ratings = train.ratings()

    predictors, chosen, timings = {}, {}, {}
    for name in BASELINES:
        model = BASELINES[name]() if name != "bias" else BiasModel(**settings["bias"])
        predictors[name] = model.fit(train_items, train_ratings)

    say(args, "\n== pretraining the same network on all training ratings ==")
    sizes, seed, ev = settings["ensemble_seeds"], settings["seed"], settings["eval"]
    start = time.perf_counter()
    # One pretrained network per member of pretrained_finetune and of every
    # method that starts from it (member i from seed + i).
    pretrained = [
        pretrain(features, train, val, settings, float(train_ratings.mean()), verbose, seed + i)
        for i in range(_pretrained_count(settings))
    ]
    timings["pretrained_finetune"] = time.perf_counter() - start
    members = []
    for i in range(sizes["pretrained_finetune"]):
        path = member_path(out, "pretrained_finetune", i, sizes["pretrained_finetune"])
        members.append(_finish_member(pretrained[i], val, ev["finetune_steps"], ev["finetune_lrs"], path))
    predictors["pretrained_finetune"], chosen["pretrained_finetune"] = _ensemble(
        members, val, settings, out, "pretrained_finetune"
    )

    for method in settings["methods"]:
        say(args, f"\n== meta-training {method} ==")
        start = time.perf_counter()
        members = []
        for i in range(sizes[method]):
            if sizes[method] > 1:
                say(args, f"-- member {i} (seed {seed + i}) --")
            learner = train_member(method, i, features, train, val, settings, pretrained, out, verbose)
            steps_grid = [learner.inner_steps * f for f in ev["meta_step_factors"]]
            adapter, info = _finish_member(learner, val, steps_grid, [None],
                                           member_path(out, method, i, sizes[method]))
            info["support_shrinkage"] = round(float(learner.inner_support_shrinkage()), 4)
            members.append((adapter, info))
        timings[method] = time.perf_counter() - start
        predictors[method], chosen[method] = _ensemble(members, val, settings, out, method)

    # Validation MAE by support size (the users' most recent k support ratings).
    val_curves = _rounded_means(mae_by_support_size(
        predictors, settings["methods"] + ["pretrained_finetune", "bias"], val, ev["support_limits"]
    ), ev["support_limits"])
    if getattr(args, "validation_only", False):
        summary = dict(
            settings, chosen_on_validation=chosen, val_mae_by_support_size=val_curves,
            users={"train": len(train), "validation": len(val), "test": len(test)},
            train_seconds={k: round(v, 1) for k, v in timings.items()},
        )
        (out / "validation.json").write_text(json.dumps(summary, indent=2) + "\n")
        for name, values in chosen.items():
            print(f"{name}: validation MAE {values['val_mae']:.4f} ({_describe(values)})")
        print(f"\nWrote {out / 'validation.json'} (--validation-only: no test user scored)")
        return {name: {"val_mae": values["val_mae"]} for name, values in chosen.items()}

    say(args, f"\n== scoring {len(test)} new (test) users ==")
    metrics, per_user = {}, {}
    for name, predictor in predictors.items():
        per_user[name] = user_scores(test.query_y, predict_tasks(predictor, test))
        metrics[name] = summarize(per_user[name])
    # Paired over the same test users: a method's MAE minus the bias model's.
    paired = {
        name: [round(v, 4) for v in mean_ci95(per_user[name]["mae"] - per_user["bias"]["mae"])]
        for name in per_user if name != "bias"
    }
    curves = mae_by_support_size(
        predictors, [m for m in predictors if m not in ("global_mean", "item_mean")], test,
        ev["support_limits"],
    )
    adapt_ms = time_adaptation(predictors, test, settings["methods"] + ["pretrained_finetune"])
    run_config = dict(
        settings,
        dataset_path=data.path,
        users={"train": len(train), "validation": len(val), "test": len(test)},
        train_ratings=int(len(train_ratings)),
        chosen_on_validation=chosen,
        val_mae_by_support_size=val_curves,
        train_seconds={k: round(v, 1) for k, v in timings.items()},
        adapt_ms_per_user=adapt_ms,
        paired_mae_minus_bias=paired,
        mae_by_support_size=_rounded_means(curves, ev["support_limits"]),
    )
    order = settings["methods"] + ["pretrained_finetune"] + list(BASELINES)
    dataset = f"MovieLens {data.name}, new users"
    if settings["extra_train_users"] == "heavy":
        dataset += " (+ heavy users in training)"
    write_results(out, "personalization", dataset, run_config,
                  {m: metrics[m] for m in order})
    table = markdown_table(metrics, list(METRICS), methods=order, fmt="{:.4f}")
    header = (f"New-user query scores on {data.name} (mean ± 95% interval over "
              f"{len(test)} test users; {len(train)} training users)")
    (out / "results.md").write_text(f"{header}\n\n{table}\n")
    plot_support_curve(curves, ev["support_limits"], out / "mae_vs_support.png")
    print(f"\n{header}:\n\n{table}")
    print("\nAdapting to one user (ms, median): " + ", ".join(f"{k} {v:.1f}" for k, v in adapt_ms.items()))
    print(f"\nWrote {out / 'results.json'}, {out / 'results.md'}, {out / 'mae_vs_support.png'} "
          f"and the models in {out / 'models'}")
    return metrics


# ----------------------------------------------------------------- settings
def _settings(config, args):
    return recipe_settings(
        config, methods=args.methods, time_budget=args.time_budget,
        extra_train_users=getattr(args, "extra_train_users", None),
    )


def recipe_settings(config, methods=None, time_budget=None, extra_train_users=None):
    """The recipe's settings: `config` (a parsed recipe.toml) with its defaults filled in.

    Args:
        config: the recipe as a dict (`fewshot.recipes.load_recipe`).
        methods: ``--methods``: a comma-separated subset of the recipe's methods, or None
            for all of them.
        time_budget: ``--time-budget`` in seconds per model, or None for the recipe's
            ``time_budget_s``.
        extra_train_users: ``--extra-train-users`` (``"none"`` or ``"heavy"``), or None
            for the recipe's.

    Returns:
        A dict with ``method_settings`` (each method's settings, merged over ``[train]``),
        the data, model, pre-training, evaluation and bias settings.

    Example:

    >>> config = {"methods": {"maml": {"adapt": "decision"}, "anil": {"adapt": "head"}}}
    >>> s = recipe_settings(config, methods="anil", time_budget=60)
    >>> list(s["method_settings"]), s["extra_train_users"]
    (['anil'], 'none')
    """
    data, model, train = config.get("data", {}), config.get("model", {}), config.get("train", {})
    pre, ev, bias = config.get("pretrain", {}), config.get("eval", {}), config.get("bias", {})
    wanted = methods
    methods = dict(config.get("methods", {"maml": {"adapt": "decision"}, "anil": {"adapt": "head"}}))
    if wanted:
        wanted = [m.strip() for m in wanted.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in methods]
        if unknown:
            raise ValueError(f"Invalid value received for `--methods`: unknown {unknown}. "
                             f"Expected some of {sorted(methods)}.")
        methods = {m: methods[m] for m in wanted}
    if time_budget is not None and not time_budget > 0:
        raise ValueError("Invalid value received for `--time-budget`. Expected a positive "
                         f"number of seconds. Received: --time-budget={time_budget}")
    budget = float(time_budget if time_budget is not None else train.get("time_budget_s", 600))
    combine = train.get("ensemble_combine", "mean")
    if combine not in COMBINES:
        raise ValueError("Invalid value received for `train.ensemble_combine`. Expected one of "
                         f"{sorted(COMBINES)}. Received: ensemble_combine={combine!r}")
    return {
        "seed": int(config.get("seed", 0)),
        "ensemble_seeds": _ensemble_sizes(train, pre, methods),
        "ensemble_combine": combine,
        "data": {
            "min_ratings": int(data.get("min_ratings", 13)),
            "max_ratings": int(data.get("max_ratings", 100)),
            "query_size": int(data.get("query_size", 10)),
        },
        "split": list(data.get("split", [0.7, 0.1, 0.2])),
        "extra_train_users": str(extra_train_users or data.get("extra_train_users", "none")),
        "model": {
            "embedding_dim": int(model.get("embedding_dim", 32)),
            "hidden": list(model.get("hidden", [64, 64])),
        },
        "methods": list(methods),
        "method_settings": methods,
        "train": {
            "meta_batch_size": int(train.get("meta_batch_size", 32)),
            "support_size": _support_size(train.get("support_size", 10)),
            "inner_lr": float(train.get("inner_lr", 0.1)),
            "inner_steps": int(train.get("inner_steps", 5)),
            "first_order": bool(train.get("first_order", False)),
            # Checked by the learner's constructor (a named error for a bad value).
            "support_shrinkage": train.get("support_shrinkage", 0.0),
            "learn_support_shrinkage": train.get("learn_support_shrinkage", False),
            "loss": str(train.get("loss", "mae")),
            "outer_lr": float(train.get("outer_lr", 3e-4)),
            "weight_decay": float(train.get("weight_decay", 0.0)),
            "batches_per_epoch": int(train.get("batches_per_epoch", 50)),
            "max_epochs": int(train.get("max_epochs", 200)),
            "patience": int(train.get("patience", 8)),
            "time_budget_s": budget,
        },
        "pretrain": {
            "batch_size": int(pre.get("batch_size", 256)),
            "lr": float(pre.get("lr", 1e-3)),
            "weight_decay": float(pre.get("weight_decay", 0.0)),
            "max_epochs": int(pre.get("max_epochs", 200)),
            "patience": int(pre.get("patience", 8)),
        },
        "bias": {"item_reg": float(bias.get("item_reg", 10.0)),
                 "user_reg": float(bias.get("user_reg", 5.0))},
        "eval": {
            "meta_step_factors": [int(s) for s in ev.get("meta_step_factors", [1, 2])],
            "finetune_steps": [int(s) for s in ev.get("finetune_steps", [1, 5, 10])],
            "finetune_lrs": [float(v) for v in ev.get("finetune_lrs", [0.003, 0.01, 0.03, 0.1])],
            "support_limits": [int(k) for k in ev.get("support_limits", [0, 1, 2, 5, 10, 20, 40, 90])],
        },
    }


def _ensemble_sizes(train, pretrain_table, methods):
    """Members per method: the method's `ensemble_seeds`, else [train]'s (default 1).

    pretrained_finetune reads [pretrain], else [train].
    """
    default = _members("train", train.get("ensemble_seeds", 1))
    sizes = {
        method: _members(f"methods.{method}", spec.get("ensemble_seeds", default))
        for method, spec in methods.items()
    }
    sizes["pretrained_finetune"] = _members("pretrain", pretrain_table.get("ensemble_seeds", default))
    return sizes


def _members(table, value):
    """`value` if it is a positive int (not a bool), else a Keras-style ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Invalid value received for `{table}.ensemble_seeds`. Expected a positive "
                         f"integer (members trained with seeds seed, seed + 1, ...). "
                         f"Received: ensemble_seeds={value!r}")
    return value


def _pretrained_count(settings):
    """How many pretrained networks: pretrained_finetune's members and those methods start from."""
    sizes = settings["ensemble_seeds"]
    starts = [sizes[m] for m in settings["methods"]
              if settings["method_settings"][m].get("init") == "pretrained"]
    return max([sizes["pretrained_finetune"]] + starts)


def _support_size(value):
    """A support size of recipe.toml: an integer, "all" or [low, high]."""
    if isinstance(value, (list, tuple)):
        return [int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
    return value


def _load(args):
    if args.tfds:
        return load_movielens_tfds()
    if not args.data_dir:
        raise ValueError(
            "No MovieLens data given: pass --data-dir DIR (a folder with u.data, "
            f"u.item, ... or ratings.dat, movies.dat, users.dat), set ${DATA_ENV}, "
            "or use --tfds."
        )
    return load_movielens(args.data_dir)



# ------------------------------------------------------------------ training
def build_learner(method, features, settings, rating_mean, seed=None):
    """A MAML learner around a fresh recommender, adapting per the method.

    `seed` (default the recipe's) seeds the initialisation.
    """
    keras.utils.set_random_seed(settings["seed"] if seed is None else seed)
    backbone = recommender(
        features.vocabulary_sizes(), len(features.genres), rating_mean=rating_mean,
        **settings["model"],
    )
    spec = settings["method_settings"].get(method, {})
    adapt = spec.get("adapt", "decision")
    layers = {"decision": decision_layer_names(backbone), "head": ["head"], "all": None}
    if adapt not in layers:
        raise ValueError(f"Invalid value received for `methods.{method}.adapt`. Expected one "
                         f"of {sorted(layers)}. Received: adapt={adapt!r}")
    train = settings["train"]
    for name in spec.get("freeze", []):
        # Frozen layers keep their (for example pretrained) weights; only the
        # rest is meta-learned.
        backbone.get_layer(name).trainable = False
    algorithm = spec.get("algorithm", "maml")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"Invalid value received for `methods.{method}.algorithm`. Expected one "
                         f"of {sorted(ALGORITHMS)}. Received: algorithm={algorithm!r}")
    learner = ALGORITHMS[algorithm](
        backbone,
        inner_lr=float(spec.get("inner_lr", train["inner_lr"])),
        inner_steps=int(spec.get("inner_steps", train["inner_steps"])),
        first_order=bool(spec.get("first_order", train["first_order"])),
        adapt_layers=layers[adapt],
        support_shrinkage=spec.get("support_shrinkage", train["support_shrinkage"]),
        learn_support_shrinkage=spec.get("learn_support_shrinkage", train["learn_support_shrinkage"]),
        name=method,
    )
    outer_lr = float(spec.get("outer_lr", train["outer_lr"]))
    learner.compile(optimizer=_optimizer(outer_lr, train["weight_decay"]), loss=train["loss"])
    return learner


def _optimizer(lr, weight_decay):
    if weight_decay > 0:
        return keras.optimizers.AdamW(lr, weight_decay=weight_decay)
    return keras.optimizers.Adam(lr)


class ValidationMAE(keras.callbacks.Callback):
    """Adds ``val_mae`` (new-user MAE of the validation users) to the logs."""

    def __init__(self, learner, tasks, steps=None, inner_lr=None):
        super().__init__()
        self.adapter = UserAdapter(learner, steps, inner_lr, clip=RATING_RANGE)
        self.tasks = tasks

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            scores = user_scores(self.tasks.query_y, self.adapter.predict_tasks(self.tasks))
            logs["val_mae"] = float(scores["mae"].mean())


def _callbacks(learner, val, patience, budget, steps=None, inner_lr=None):
    return [
        ValidationMAE(learner, val, steps, inner_lr),
        keras.callbacks.EarlyStopping(
            monitor="val_mae", mode="min", patience=patience, restore_best_weights=True
        ),
        TimeBudget(budget),
    ]


def train_meta(learner, train, val, settings, backup_dir, verbose=0, seed=None):
    """Meta-trains on episodes of the training users; early-stops on val MAE.

    Resumable: an interrupted run continues from ``backup_dir`` when the
    same command is run again (Keras `BackupAndRestore`). `seed` (default
    the recipe's) seeds the episode sampling.
    """
    t = settings["train"]
    # A method may override the support set of its training episodes.
    spec = settings["method_settings"].get(learner.name, {})
    support_size = _support_size(spec.get("support_size", t["support_size"]))
    stream = episode_stream(
        train, t["meta_batch_size"], support_size, t["batches_per_epoch"],
        seed=settings["seed"] if seed is None else seed,
    )
    callbacks = _callbacks(learner, val, t["patience"], t["time_budget_s"])
    callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir)))
    return learner.fit(stream, epochs=t["max_epochs"], callbacks=callbacks, verbose=verbose)


def pretrain(features, train, val, settings, rating_mean, verbose=0, seed=None):
    """The same network trained on every training rating (no meta-learning).

    Returned inside a `MAML` wrapper (not meta-trained) so that it is
    fine-tuned on a user's support set by exactly the same code path.
    `seed` (default the recipe's) seeds the initialisation and shuffling.
    """
    keras.utils.set_random_seed(settings["seed"] if seed is None else seed)
    backbone = recommender(
        features.vocabulary_sizes(), len(features.genres), rating_mean=rating_mean,
        **settings["model"],
    )
    p, t = settings["pretrain"], settings["train"]
    backbone.compile(optimizer=_optimizer(p["lr"], p["weight_decay"]), loss=t["loss"])
    wrapper = MAML(backbone, inner_lr=t["inner_lr"], inner_steps=0, name="pretrained_finetune")
    wrapper.compile(loss=t["loss"])
    x, y = train.examples()
    backbone.fit(
        x, y, batch_size=p["batch_size"], epochs=p["max_epochs"], shuffle=True, verbose=verbose,
        callbacks=_callbacks(wrapper, val, p["patience"], t["time_budget_s"]),
    )
    return wrapper


def train_member(method, index, features, train, val, settings, pretrained, out, verbose=0):
    """Member `index` of a method's seed ensemble, meta-trained with seed + index.

    A method with ``init = "pretrained"`` starts from ``pretrained[index]``
    (the pretrained network of the same seed).
    """
    seed = settings["seed"] + index
    size = settings["ensemble_seeds"][method]
    learner = build_learner(method, features, settings, float(np.mean(train.ratings()[2])), seed)
    if settings["method_settings"][method].get("init") == "pretrained":
        # Meta-learning starts from the pretrained network (its time is
        # counted in pretrained_finetune's).
        for layer in pretrained[index].backbone.layers:
            learner.backbone.get_layer(layer.name).set_weights(layer.get_weights())
    backup = out / "backup" / method
    train_meta(learner, train, val, settings, backup if size == 1 else backup / f"member_{index}",
               verbose, seed)
    return learner


def member_path(out, name, index, size):
    """``models/NAME.keras`` for one member, ``models/NAME/member_I.keras`` for an ensemble."""
    if size == 1:
        return out / "models" / f"{name}.keras"
    return out / "models" / name / f"member_{index}.keras"


def _finish_member(learner, val, steps_grid, lr_grid, path):
    """Chooses a member's test-time adaptation on validation and saves it."""
    steps, lr, val_mae = tune_adaptation(learner, val, steps_grid, lr_grid)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_learner(learner, path, steps, lr)
    return UserAdapter(learner, steps, lr, clip=RATING_RANGE), {
        "steps": steps, "inner_lr": lr, "val_mae": val_mae
    }


def _ensemble(members, val, settings, out, name):
    """The predictor of a method's row and what was chosen on validation.

    One member is today's method, unchanged. Several are combined by
    `EnsembleAdapter`; the record then has each member's choices and
    validation MAE and `ensemble_validation` (the first n members, n = 1..N).
    """
    if len(members) == 1:
        return members[0]
    combine = settings["ensemble_combine"]
    ensemble = EnsembleAdapter([adapter for adapter, _ in members], combine)
    by_size = ensemble_validation(ensemble, val)
    infos = [dict(info, seed=settings["seed"] + i) for i, (_, info) in enumerate(members)]
    write_ensemble_record(
        out / "models" / name, [f"member_{i}.keras" for i in range(len(members))], combine
    )
    chosen = {"ensemble_seeds": len(members), "combine": combine,
              "val_mae": by_size[combine][-1], "members": infos, "by_members": by_size}
    return ensemble, chosen


def ensemble_validation(ensemble, tasks):
    """Validation MAE of the first n members combined, for n = 1 .. N.

    Returns:
        ``{"members": [1..N], "mean": [MAE], "median": [MAE],
        "paired_mean_vs_1": [[mean, ci95]], "paired_median_vs_1": ...}``:
        the paired differences are per user against member 0 alone.
    """
    preds = [ensemble.member_predictions(sx, sy, qx)
             for sx, sy, qx in zip(tasks.support_x, tasks.support_y, tasks.query_x)]
    single = user_scores(tasks.query_y, [p[0] for p in preds])["mae"]
    out = {"members": list(range(1, len(ensemble.adapters) + 1))}
    for how, combine in COMBINES.items():
        maes = [user_scores(tasks.query_y, [combine(p[:n], axis=0) for p in preds])["mae"]
                for n in out["members"]]
        out[how] = [float(m.mean()) for m in maes]
        out[f"paired_{how}_vs_1"] = [[round(v, 4) for v in mean_ci95(m - single)] for m in maes]
    return out


def _describe(chosen):
    """A line on a method's validation choices (validation-only output)."""
    if "members" not in chosen:
        return f"steps {chosen['steps']}, inner_lr {chosen['inner_lr']}"
    single = ", ".join(f"{m['val_mae']:.4f}" for m in chosen["members"])
    return (f"{chosen['combine']} of {chosen['ensemble_seeds']} seeds; median "
            f"{chosen['by_members']['median'][-1]:.4f}; members {single}")


def tune_adaptation(learner, val, steps_grid, lr_grid):
    """The (steps, inner_lr) with the lowest validation MAE, and that MAE."""
    best = None
    for steps in steps_grid:
        for lr in lr_grid:
            adapter = UserAdapter(learner, steps, lr, clip=RATING_RANGE)
            mae = float(user_scores(val.query_y, adapter.predict_tasks(val))["mae"].mean())
            if best is None or mae < best[2]:
                best = (steps, lr, mae)
    return best


def save_learner(learner, path, steps, inner_lr):
    """Saves the learner (.keras) and its chosen adaptation settings (.json)."""
    learner.save(path)
    pathlib.Path(path).with_suffix(".json").write_text(
        json.dumps({"steps": steps, "inner_lr": inner_lr}) + "\n"
    )


# ---------------------------------------------------------------- evaluation
def predict_tasks(predictor, tasks, support_limit=None):
    """Query predictions per user; `support_limit` keeps the last k support ratings."""
    if isinstance(predictor, TaskPredictor):
        return predictor.predict_tasks(tasks, support_limit)
    out = []
    for si, sy, qi in zip(tasks.support_items, tasks.support_y, tasks.query_items):
        if support_limit is not None:
            si, sy = _last(si, support_limit), _last(sy, support_limit)
        out.append(predictor.predict(si, sy, qi))
    return out


def mae_by_support_size(predictors, names, tasks, limits):
    """``{name: [(mean, ci95) of the MAE over `tasks` for each k in `limits`]}``.

    Each named predictor adapts on each user's most recent k support ratings.
    """
    return {
        name: [
            summarize(user_scores(tasks.query_y, predict_tasks(predictors[name], tasks, k)))["mae"]
            for k in limits
        ]
        for name in names
    }


def _rounded_means(curves, limits):
    """The JSON form of `mae_by_support_size`: the limits and each curve's means."""
    return {"support_limits": list(limits), **{k: [round(float(m), 4) for m, _ in v] for k, v in curves.items()}}


def _last(values, k):
    return values[len(values) - min(k, len(values)):]


def time_adaptation(predictors, tasks, methods, repeats=50):
    """Median milliseconds to adapt to one user and score their query items."""
    sizes = tasks.support_sizes()
    user = int(np.argsort(sizes)[len(sizes) // 2])  # a user with the median support size
    sx, sy, qx = tasks.support_x[user], tasks.support_y[user], tasks.query_x[user]
    out = {}
    for method in methods:
        out[method] = round(float(np.median(adaptation_times_ms(predictors[method], sx, sy, qx, repeats))), 2)
    out["support_size"] = int(sizes[user])
    return out


def adaptation_times_ms(adapter, support_x, support_y, query_x, repeats=50):
    """Milliseconds of `repeats` calls of `adapter` on one user, after one untimed (tracing) call."""
    adapter(support_x, support_y, query_x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        adapter(support_x, support_y, query_x)
        times.append(1000 * (time.perf_counter() - start))
    return np.asarray(times)


def plot_support_curve(curves, limits, path):
    """MAE of the test users against the number of support ratings used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = np.arange(len(limits))
    for name, values in curves.items():
        means = np.asarray([m for m, _ in values])
        halves = np.asarray([h for _, h in values])
        ax.plot(xs, means, marker="o", label=name)
        ax.fill_between(xs, means - halves, means + halves, alpha=0.12)
    ax.set_xticks(xs, [str(k) for k in limits])
    ax.set_xlabel("support ratings used (the user's most recent k)")
    ax.set_ylabel("query MAE, test users")
    ax.set_title("How fast each method learns a new user")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
