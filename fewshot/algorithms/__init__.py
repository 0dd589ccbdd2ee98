"""Meta-learning algorithms, each a `keras.Model`."""

from fewshot.algorithms.maml import MAML
from fewshot.algorithms.meta_learner import MetaLearner

__all__ = ["MAML", "MetaLearner"]
