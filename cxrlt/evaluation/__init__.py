"""Evaluation: the challenge metrics, overall and per class."""
