"""fewshot: Keras 3 models that learn a new task from a handful of examples."""

from fewshot import algorithms, callbacks, episodes, export, models, threads
from fewshot.algorithms import (
    ANIL,
    MAML,
    MetaLearner,
    MetaSGD,
    PrototypicalNetwork,
    Reptile,
    SiameseNetwork,
    TaskRetrieval,
)
from fewshot.export import export_saved_model, load_saved_model

__version__ = "0.1.0"

__all__ = [
    "ANIL",
    "MAML",
    "MetaLearner",
    "MetaSGD",
    "PrototypicalNetwork",
    "Reptile",
    "SiameseNetwork",
    "TaskRetrieval",
    "__version__",
    "algorithms",
    "callbacks",
    "episodes",
    "export",
    "export_saved_model",
    "load_saved_model",
    "models",
    "threads",
]
