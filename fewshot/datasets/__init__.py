"""Datasets: readers of the canonical files (and TFDS) into task stores."""

from fewshot.datasets.featurize import Featurizer, MoleculeSet, featurize_table
from fewshot.datasets.graph_features import GraphFeaturizer
from fewshot.datasets.image_folder import load_image_folder
from fewshot.datasets.moleculenet import MoleculeTable, load_moleculenet, split_tasks
from fewshot.datasets.omniglot import Omniglot, load_omniglot, omniglot_splits
from fewshot.datasets.movielens import MovieLens, load_movielens, load_movielens_tfds
from fewshot.datasets.tfds_classes import load_tfds_classes

__all__ = [
    "Featurizer",
    "GraphFeaturizer",
    "MoleculeSet",
    "MoleculeTable",
    "MovieLens",
    "Omniglot",
    "featurize_table",
    "load_image_folder",
    "load_moleculenet",
    "load_movielens",
    "load_movielens_tfds",
    "load_omniglot",
    "load_tfds_classes",
    "omniglot_splits",
    "split_tasks",
]
