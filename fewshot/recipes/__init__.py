"""Recipe runners: the domain logic behind `fewshot run recipes/<name>`.

A recipe folder holds a ``recipe.toml`` whose ``runner`` key names a module
here. Each runner module exposes ``add_arguments(parser)`` for its own
command-line options and ``run(config, args)``, which trains, evaluates and
writes ``results.json`` with `fewshot.recipes.results.write_results`.
"""

from fewshot.recipes.config import RUNNERS, load_recipe

__all__ = ["RUNNERS", "load_recipe"]
