"""Helpers shared by the test suite and the benchmarks: a tiny random BERT, synthetic events,
ports and waits, processes, and the crash-replay harness. Not used by the services themselves."""
