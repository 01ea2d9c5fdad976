"""Benchmarks: scripts that measure streamtune against a baseline in the same run and print a
table (plus JSON). Run them as modules from the repository root, e.g.
``python -m benchmarks.serving``."""
