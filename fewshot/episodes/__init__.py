"""Episodes: batches of few-shot tasks and the samplers that draw them."""

from fewshot.episodes.episode import EPISODE_KEYS, validate_episode
from fewshot.episodes.regression import Sinusoid
from fewshot.episodes.sampler import EpisodeSampler
from fewshot.episodes.splits import split_classes
from fewshot.episodes.stream import EpisodeStream
from fewshot.episodes.task_sampler import TaskSampler

__all__ = [
    "EPISODE_KEYS",
    "EpisodeSampler",
    "EpisodeStream",
    "Sinusoid",
    "TaskSampler",
    "split_classes",
    "validate_episode",
]
