"""Training: distribution strategies, the training loop and its hooks, summaries, the work-dir layout."""
