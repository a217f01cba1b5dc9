"""Reporting: certified-accuracy metrics and summaries, tables, plots, W&B and the comparison
of runs."""
