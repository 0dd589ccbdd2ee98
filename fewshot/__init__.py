"""fewshot: Keras 3 models that learn a new task from a handful of examples."""

from fewshot import algorithms, callbacks, episodes, models
from fewshot.algorithms import MAML, MetaLearner

__version__ = "0.1.0"

__all__ = [
    "MAML",
    "MetaLearner",
    "__version__",
    "algorithms",
    "callbacks",
    "episodes",
    "models",
]
