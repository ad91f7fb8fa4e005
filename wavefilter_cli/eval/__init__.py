"""Evaluation metrics and benchmark scoring."""
