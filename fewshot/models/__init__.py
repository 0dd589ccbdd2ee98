"""Backbones: the networks that meta-learners adapt."""

from fewshot.models.fingerprint import fingerprint_encoder
from fewshot.models.mlp import mlp
from fewshot.models.recommender import recommender

__all__ = ["fingerprint_encoder", "mlp", "recommender"]
