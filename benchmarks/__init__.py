"""Benchmarks of the project's frame transport and recording against naive baselines."""
