"""Backbones: the networks that meta-learners adapt."""

from fewshot.models.mlp import mlp

__all__ = ["mlp"]
