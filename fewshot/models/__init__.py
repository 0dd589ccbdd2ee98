"""Backbones: the networks that meta-learners adapt."""

from fewshot.models.batch_norm import BatchNormalization
from fewshot.models.conv4 import conv4
from fewshot.models.fingerprint import fingerprint_encoder
from fewshot.models.graph import GraphIsomorphismNetwork, gin_encoder
from fewshot.models.mlp import mlp
from fewshot.models.recommender import recommender

__all__ = [
    "BatchNormalization",
    "GraphIsomorphismNetwork",
    "conv4",
    "fingerprint_encoder",
    "gin_encoder",
    "mlp",
    "recommender",
]
