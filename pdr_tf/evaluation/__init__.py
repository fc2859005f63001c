"""Evaluation: clustering metrics, disentanglement, de-rendering metrics and scoring, plots, reports."""
