"""What a recipe run prints as it goes.

Every runner reports its stages (data read, each method trained, the table
written) with `say`, which stays silent under ``--quiet`` (then only the
final table is printed) and flushes each line, so a log written through
``nohup`` or a pipe shows where a long run has got to.
"""


def say(args, text):
    """Prints `text` and flushes it, unless the run was started with ``--quiet``.

    Args:
        args: the run's parsed command line (an `argparse.Namespace` with a
            boolean ``quiet``).
        text: the line to print.

    Example:

    >>> import argparse
    >>> from fewshot.recipes.console import say
    >>> say(argparse.Namespace(quiet=False), "training maml")
    training maml
    >>> say(argparse.Namespace(quiet=True), "training maml")
    """
    if not args.quiet:
        print(text, flush=True)
