"""Recommendation on top of meta-learners: baselines, scores, adaptation."""
