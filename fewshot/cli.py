"""The `fewshot` command line.

    fewshot run RECIPE --out DIR [recipe options]
    fewshot export MODEL OUT_DIR [--steps N] [--overwrite]
    fewshot app [--port 8501] [--address 127.0.0.1] [--models-dir runs]
    fewshot summarize OUT1 OUT2 ... --metric mae [--against bias]
    fewshot evaluate MODEL.keras --data-dir DIR [--ways 5 --shots 1]

`fewshot run recipes/sinusoid --out runs/sinusoid` meta-trains and evaluates
the embedded default; `fewshot run RECIPE --help` lists a recipe's options.
"""

import argparse
import json
import os
import pathlib
import sys


class CLIError(Exception):
    """An error the command line reports as one clear line, not a traceback."""


def _run_parser(add_help=True):
    parser = argparse.ArgumentParser(
        prog="fewshot run",
        add_help=add_help,
        description=(
            "Run a recipe: meta-train, evaluate on held-out tasks, and write "
            "results.json, a markdown table, plots and the trained model to --out."
        ),
    )
    parser.add_argument(
        "recipe",
        nargs=None if add_help else "?",
        help="recipe folder (holding recipe.toml), e.g. recipes/sinusoid",
    )
    parser.add_argument("--out", required=add_help, help="output folder for results, plots and models")
    parser.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars, only the final table"
    )
    parser.epilog = _recipes_epilog()
    return parser


def _recipes_epilog():
    """Where the recipe-specific options are listed, and the recipes a source checkout holds."""
    text = "Each recipe adds its own options: `fewshot run RECIPE --help` lists them."
    folder = pathlib.Path(__file__).resolve().parents[1] / "recipes"
    found = sorted(path.parent.name for path in folder.glob("*/recipe.toml"))
    if found:
        text += " Recipes in this checkout: " + ", ".join(f"recipes/{name}" for name in found) + "."
    return text


def _check_output_file(option, value):
    """Fails before any work when the CSV `--option` cannot be written."""
    path = pathlib.Path(value)
    if path.is_dir():
        raise CLIError(f"{option} must be a file to write, not a folder. Received: {option} {value}")
    if not path.parent.is_dir():
        raise CLIError(
            f"{option}: the folder {str(path.parent)!r} does not exist. Received: {option} {value}"
        )


def _quiet_tensorflow():
    """Silences TensorFlow's Python logger below errors: its retracing notices are not for users."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def _find_recipe(argv):
    """The recipe argument of `fewshot run`, found before the runner's options are known.

    The first argument that is a recipe folder (holding recipe.toml) or a
    recipe file, other than the value of --out or --seed. A first parse
    with only the common options would take the value of a runner option
    (`--algorithm protonet recipes/omniglot`) for the recipe. None when no
    argument is a recipe: the caller then reports the first positional one.
    """
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--":
            break
        elif arg in ("--out", "--seed"):
            skip = True
        elif not arg.startswith("-"):
            path = pathlib.Path(arg)
            if (path / "recipe.toml").is_file() or (path.suffix == ".toml" and path.is_file()):
                return arg
    return None


def _cmd_run(argv):
    from fewshot.recipes.config import load_recipe, runner_module

    # Find the recipe first: its runner adds options.
    recipe = _find_recipe(argv)
    if recipe is None:
        known, _ = _run_parser(add_help=False).parse_known_args(argv)
        if known.recipe is None:
            _run_parser().parse_args(argv)  # prints the help, or the usage error
        recipe = known.recipe
    try:
        config = load_recipe(recipe)
    except (FileNotFoundError, ValueError) as error:
        raise CLIError(str(error)) from None
    runner = runner_module(config["runner"])
    _quiet_tensorflow()
    parser = _run_parser()
    parser.description = (config.get("description") or parser.description).strip()
    parser.epilog = None  # the recipe's own options follow
    runner.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.seed is not None:
        config["seed"] = args.seed
    runner.run(config, args)
    return 0


def _cmd_export(argv):
    parser = argparse.ArgumentParser(
        prog="fewshot export",
        description=(
            "Export a .keras model (a meta-learner, or a model that `adapt` "
            "returned) as a TensorFlow SavedModel. A learner gets the "
            "endpoints serving_default, adapt_and_predict (the inner loop runs "
            "inside the graph) and, for metric learners, embed; a plain model "
            "gets serving_default. Inspect it with `saved_model_cli show --all "
            "--dir OUT_DIR`."
        ),
    )
    parser.add_argument("model", help="a .keras file, e.g. runs/sinusoid/models/maml.keras")
    parser.add_argument("out_dir", help="the SavedModel folder to write")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="inner steps baked into adapt_and_predict (default: the learner's own)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace OUT_DIR if it exists and is not empty"
    )
    args = parser.parse_args(argv)
    source, target = pathlib.Path(args.model).resolve(), pathlib.Path(args.out_dir).resolve()
    if args.overwrite and (target == source or target in source.parents):
        raise CLIError(
            f"--overwrite would delete the model being exported: {args.model} is inside "
            f"OUT_DIR. Choose another OUT_DIR. Received: OUT_DIR {args.out_dir}"
        )
    from fewshot.export import describe_signatures, export_saved_model, load_keras_model

    _quiet_tensorflow()
    model = load_keras_model(args.model)
    export_saved_model(model, args.out_dir, steps=args.steps, overwrite=args.overwrite)
    print(f"Exported {type(model).__name__} {model.name!r} to {args.out_dir}")
    print("Signatures (one task at a time; None: any number of examples):")
    for line in describe_signatures(args.out_dir):
        print(f"  {line}")
    print(f"Inspect: saved_model_cli show --all --dir {args.out_dir}")
    return 0


def _cmd_recommend(argv):
    parser = argparse.ArgumentParser(
        prog="fewshot recommend",
        description=(
            "Adapt a personalisation model (from `fewshot run recipes/personalization`) "
            "to a new user's few ratings and print the top-k candidates with predicted "
            "ratings. Unknown item ids come back as error rows, never dropped."
        ),
    )
    parser.add_argument("--model", required=True, action="append",
                        help="OUT/models/maml.keras (or another method), or a seed ensemble: its "
                        "folder (OUT/models/meta_sgd) or --model repeated; members' predictions "
                        "are averaged")
    parser.add_argument("--ratings", required=True, help="CSV with columns item,rating")
    parser.add_argument("--candidates", default=None, help="CSV with an item column (default: all unrated items)")
    parser.add_argument("--data-dir", default=os.environ.get("FEWSHOT_MOVIELENS_DIR"),
                        help="the MovieLens folder the model was trained on")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--age", type=float, default=None, help="the user's age in years, 1-120")
    parser.add_argument("--gender", default=None, help="M or F")
    parser.add_argument("--occupation", default=None)
    parser.add_argument("--steps", type=int, default=None, help="adaptation steps (default: the model's)")
    parser.add_argument("--output", default=None, help="also write the table to this CSV")
    args = parser.parse_args(argv)
    if not args.data_dir:
        raise CLIError("--data-dir is required (or set FEWSHOT_MOVIELENS_DIR)")
    if args.output:
        _check_output_file("--output", args.output)
    from fewshot.datasets.user_tasks import check_age

    check_age(args.age, name="--age", nan_is_unknown=False)  # before the data and models load
    import time

    from fewshot.datasets.movielens import load_movielens
    from fewshot.datasets.user_tasks import RatingFeatures
    from fewshot.recsys.recommend import check_compatible, load_adapter, recommend

    _quiet_tensorflow()
    features = RatingFeatures.from_movielens(load_movielens(args.data_dir))
    learners, adapter = load_adapter(args.model[0] if len(args.model) == 1 else args.model, args.steps)
    for learner in learners:
        check_compatible(learner, features)
    start = time.perf_counter()
    table = recommend(
        learners[0], features, args.ratings, args.candidates, top_k=args.top_k, age=args.age,
        gender=args.gender, occupation=args.occupation, adapter=adapter,
    )
    seconds = time.perf_counter() - start
    print(table.astype(object).where(table.notna(), "").to_string(index=False))
    print(f"({seconds * 1000:.0f} ms including the first compilation)")
    if args.output:
        table.to_csv(args.output, index=False)
    return 0


def _cmd_app(argv):
    parser = argparse.ArgumentParser(
        prog="fewshot app",
        description=(
            "Start the fewshot web app (Streamlit): pick a trained model, upload a "
            "few labelled examples, adapt, and predict. Opens on http://ADDRESS:PORT."
        ),
    )
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    parser.add_argument(
        "--address", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument(
        "--models-dir",
        default=None,
        help="folder(s) scanned for trained models, separated by os.pathsep "
        "(default $FEWSHOT_MODELS_DIR, else runs)",
    )
    parser.add_argument("--browser", action="store_true", help="open a browser tab")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        raise CLIError(f"Invalid value received for `--port`. Expected 1-65535. Received: --port={args.port}")
    import importlib.util
    import pathlib
    import subprocess

    if importlib.util.find_spec("streamlit") is None:
        raise CLIError('the app needs Streamlit: pip install "fewshot[app]"')
    script = pathlib.Path(__file__).resolve().parent.parent / "apps" / "fewshot_app.py"
    if not script.is_file():
        raise CLIError(f"the app script is missing: {script} (run from a fewshot checkout)")
    env = dict(os.environ)
    if args.models_dir:
        env["FEWSHOT_MODELS_DIR"] = args.models_dir
    command = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.port", str(args.port), "--server.address", args.address,
        "--server.headless", "false" if args.browser else "true",
        "--server.maxUploadSize", "5", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]
    print(f"fewshot app on http://{args.address}:{args.port} (Ctrl-C to stop)", flush=True)
    if os.name == "posix":
        # Become the server, so that signals (Ctrl-C, a supervisor's SIGTERM) reach it.
        os.execve(sys.executable, command, env)
    return subprocess.call(command, env=env)


def _cmd_predict_molecules(argv):
    parser = argparse.ArgumentParser(
        prog="fewshot predict-molecules",
        description=(
            "Adapt a trained molecule model (a folder OUT/models/METHOD written by "
            "`fewshot run recipes/drug_property`) to a few labelled molecules and "
            "rank the query molecules by their probability of being active. Every "
            "query row is kept in the output; rows with invalid SMILES are flagged "
            "(valid=False, error=...) and left unscored."
        ),
    )
    parser.add_argument("--model", required=True, help="model folder, e.g. runs/drug_property/models/protonet")
    parser.add_argument("--support", required=True, help="CSV with a SMILES column and a 1/0 label column")
    parser.add_argument("--query", required=True, help="CSV with a SMILES column (other columns are kept)")
    parser.add_argument("--out", required=True, help="predictions CSV to write")
    parser.add_argument("--smiles-column", default=None, help="name of the SMILES column (default: found)")
    parser.add_argument("--label-column", default=None, help="name of the support's label column (default: found)")
    parser.add_argument("--steps", type=int, default=None, help="adaptation steps (default: the model's)")
    args = parser.parse_args(argv)
    _check_output_file("--out", args.out)
    from fewshot.predict_molecules import predict_molecules

    _quiet_tensorflow()
    predictions, support = predict_molecules(
        args.model, args.support, args.query, smiles_column=args.smiles_column,
        label_column=args.label_column, steps=args.steps,
    )
    predictions.to_csv(args.out, index=False)
    invalid = int((~predictions["valid"]).sum())
    skipped = int((~support["valid"]).sum())
    print(f"Wrote {args.out}: {len(predictions)} query rows ({invalid} invalid, flagged); "
          f"adapted on {len(support) - skipped} support molecules ({skipped} invalid rows skipped).")
    return 0


def _cmd_summarize(argv):
    parser = argparse.ArgumentParser(
        prog="fewshot summarize",
        description=(
            "Summarise runs of one recipe that differ only in --seed (for example "
            "`fewshot run recipes/personalization --seed S --out runs/p/seedS`): "
            "each method's metric in every run, the mean over runs with a 95% "
            "Student-t interval and, with --against, the paired difference from "
            "another method. Prints a markdown table."
        ),
    )
    parser.add_argument("runs", nargs="+", help="the runs' --out folders (or results.json files), two or more")
    parser.add_argument("--metric", required=True, help="metric of the recipe's results.json, e.g. mae, roc_auc_10shot")
    parser.add_argument("--against", default=None, help="method to pair every other method against, e.g. bias")
    parser.add_argument("--plot", default=None, help="also draw the runs and means to this PNG")
    args = parser.parse_args(argv)
    from fewshot.recipes.summary import summarize_runs, summary_plot, summary_table

    summary = summarize_runs(args.runs, args.metric, against=args.against)
    print(summary_table(summary))
    if args.plot:
        print(f"Wrote {summary_plot(summary, args.plot)}")
    return 0


def _cmd_evaluate(argv):
    parser = argparse.ArgumentParser(
        prog="fewshot evaluate",
        description=(
            "Test a trained image learner (a .keras file from recipes/images or recipes/omniglot) "
            "on classes it has never seen: every class of --data-dir (one subfolder of images per "
            "class) or of a TFDS split. Prints its N-way K-shot accuracy with a 95% interval "
            "beside the raw pixels' nearest class mean on the same episodes."
        ),
    )
    parser.add_argument("model", help="a .keras learner, e.g. runs/images/models/protonet.keras")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-dir", help="folder with one subfolder of images per class")
    source.add_argument("--tfds", metavar="NAME", help="a TFDS dataset instead, e.g. omniglot")
    parser.add_argument("--split", default="test", help="with --tfds: the split (default test)")
    parser.add_argument("--tfds-dir", default=None, help="with --tfds: TFDS's data_dir (a local copy)")
    parser.add_argument("--ways", type=int, default=5, help="N classes per episode (default 5)")
    parser.add_argument("--shots", type=int, default=1, help="K support images per class (default 1)")
    parser.add_argument("--queries", type=int, default=5, help="query images per class (default 5)")
    parser.add_argument("--episodes", type=int, default=600, help="test episodes (default 600)")
    parser.add_argument("--steps", type=int, default=None,
                        help="MAML family: inner steps at test (default: the model's own)")
    parser.add_argument("--max-per-class", type=int, default=None, help="use at most this many images of each class")
    parser.add_argument("--invert", action="store_true",
                        help="invert the images (1 - x): Omniglot models saw bright strokes on black")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episodes (default 0)")
    parser.add_argument("--output", default=None, help="also write the scores to this JSON file")
    args = parser.parse_args(argv)
    if args.output:
        _check_output_file("--output", args.output)
    from fewshot.recipes.images import evaluate_model

    report = evaluate_model(
        args.model, data_dir=args.data_dir, tfds=args.tfds, split=args.split, tfds_dir=args.tfds_dir,
        ways=args.ways, shots=args.shots, queries=args.queries, episodes=args.episodes, steps=args.steps,
        max_per_class=args.max_per_class, invert=args.invert, seed=args.seed,
    )
    print(report["table"])
    if args.output:
        pathlib.Path(args.output).write_text(json.dumps({k: v for k, v in report.items() if k != "table"}, indent=1) + "\n")
        print(f"Wrote {args.output}")
    return 0


# Each command: name -> (function taking the remaining argv, one-line help).
# A new command adds a `_cmd_<name>` function above and one entry here.
COMMANDS = {
    "run": (_cmd_run, "train and evaluate a recipe, write results.json"),
    "recommend": (_cmd_recommend, "top-k items for a new user from a few ratings (personalization)"),
    "app": (_cmd_app, "start the web app: upload a few examples, adapt, predict"),
    "export": (_cmd_export, "export a .keras learner as a SavedModel that adapts in the graph"),
    "predict-molecules": (_cmd_predict_molecules, "rank molecules for a new assay from a few labelled ones"),
    "summarize": (_cmd_summarize, "mean and interval of each method over runs with different seeds"),
    "evaluate": (_cmd_evaluate, "test a trained image learner on new classes (a folder or a TFDS split)"),
}


def main(argv=None):
    """Entry point of the `fewshot` command."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="fewshot",
        description="fewshot: Keras models that learn a new task from a handful of examples.",
        epilog="Run `fewshot COMMAND --help` for a command's options.",
    )
    parser.add_argument(
        "command",
        choices=sorted(COMMANDS),
        help="; ".join(f"{name}: {text}" for name, (_, text) in sorted(COMMANDS.items())),
    )
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.parse_args([command])  # prints the usage error and exits 2
    try:
        return COMMANDS[command][0](rest)
    except (CLIError, ValueError, OSError, FloatingPointError) as error:
        # Bad input, files that cannot be read or written and diverged
        # training are reported as one clear line;
        # FEWSHOT_DEBUG=1 shows the traceback.
        if os.environ.get("FEWSHOT_DEBUG"):
            raise
        print(f"fewshot {command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fewshot {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
