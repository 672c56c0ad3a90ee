"""Experiments of the paper run with advseg (not installed; run from the repository root)."""
