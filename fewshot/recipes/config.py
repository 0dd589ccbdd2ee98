"""Reading recipe configuration files."""

import importlib
import pathlib

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

# Runner name (the `runner` key of recipe.toml) -> module implementing it.
RUNNERS = {
    "omniglot": "fewshot.recipes.omniglot",
    "sinusoid": "fewshot.recipes.sinusoid",
    "drug_property": "fewshot.recipes.drug_property",
    "personalization": "fewshot.recipes.personalization",
    "images": "fewshot.recipes.images",
}


def load_recipe(path):
    """Reads ``recipe.toml`` from a recipe folder (or the file itself).

    Returns:
        The parsed configuration dict; it always has a ``runner`` key.

    Raises:
        FileNotFoundError: the path holds no recipe.toml.
        ValueError: the file is not valid TOML or names no known runner.
    """
    path = pathlib.Path(path)
    file = path / "recipe.toml" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"No recipe found at {str(path)!r}: expected a folder with a "
            "recipe.toml (for example recipes/sinusoid) or the file itself."
        )
    try:
        config = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"Recipe file {str(file)!r} is not valid TOML: {error}") from None
    runner = config.get("runner")
    if runner not in RUNNERS:
        raise ValueError(
            f"Recipe file {str(file)!r} must name a runner, one of "
            f"{sorted(RUNNERS)}. Received: runner={runner!r}"
        )
    return config


def runner_module(name):
    """Imports the module of runner `name`."""
    return importlib.import_module(RUNNERS[name])
