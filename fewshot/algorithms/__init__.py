"""Meta-learning algorithms, each a `keras.Model`."""

from fewshot.algorithms.anil import ANIL
from fewshot.algorithms.fine_tuner import FineTuner
from fewshot.algorithms.maml import MAML
from fewshot.algorithms.meta_learner import MetaLearner
from fewshot.algorithms.meta_sgd import MetaSGD
from fewshot.algorithms.metric_learner import MetricLearner
from fewshot.algorithms.protonet import PrototypicalNetwork
from fewshot.algorithms.reptile import Reptile
from fewshot.algorithms.siamese import SiameseNetwork
from fewshot.algorithms.task_retrieval import TaskRetrieval

__all__ = [
    "ANIL",
    "FineTuner",
    "MAML",
    "MetaLearner",
    "MetaSGD",
    "MetricLearner",
    "PrototypicalNetwork",
    "Reptile",
    "SiameseNetwork",
    "TaskRetrieval",
]
