"""Backbones: the networks that meta-learners adapt."""

from fewshot.models.conv4 import conv4
from fewshot.models.fingerprint import fingerprint_encoder
from fewshot.models.mlp import mlp
from fewshot.models.recommender import recommender

__all__ = ["conv4", "fingerprint_encoder", "mlp", "recommender"]
