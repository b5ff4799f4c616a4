"""Outputs: the run directory and what is written into it."""
