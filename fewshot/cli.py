"""The `fewshot` command line.

    fewshot run RECIPE --out DIR [recipe options]

`fewshot run recipes/sinusoid --out runs/sinusoid` meta-trains and evaluates
the embedded default; `fewshot run RECIPE --help` lists a recipe's options.
"""

import argparse
import os
import sys


class CLIError(Exception):
    """An error the command line reports as one clear line, not a traceback."""


def _run_parser():
    parser = argparse.ArgumentParser(
        prog="fewshot run",
        description=(
            "Run a recipe: meta-train, evaluate on held-out tasks, and write "
            "results.json, a markdown table, plots and the trained model to --out."
        ),
    )
    parser.add_argument("recipe", help="recipe folder (holding recipe.toml), e.g. recipes/sinusoid")
    parser.add_argument("--out", required=True, help="output folder for results, plots and models")
    parser.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars, only the final table"
    )
    return parser


def _cmd_run(argv):
    from fewshot.recipes.config import load_recipe, runner_module

    base = _run_parser()
    known, _ = base.parse_known_args(argv)
    if known.recipe is None:
        base.error("the recipe folder is required")
    try:
        config = load_recipe(known.recipe)
    except (FileNotFoundError, ValueError) as error:
        raise CLIError(str(error)) from None
    runner = runner_module(config["runner"])
    parser = _run_parser()
    parser.description = (config.get("description") or parser.description).strip()
    runner.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.seed is not None:
        config["seed"] = args.seed
    runner.run(config, args)
    return 0


# Each command: name -> (function taking the remaining argv, one-line help).
# A new command adds a `_cmd_<name>` function above and one entry here.
COMMANDS = {
    "run": (_cmd_run, "train and evaluate a recipe, write results.json"),
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
    except (CLIError, ValueError, FileNotFoundError, FloatingPointError) as error:
        # Bad input and diverged training are reported as one clear line;
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
