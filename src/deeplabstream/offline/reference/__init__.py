"""Generators of the reference pages in docs/ (settings keys, experiments, triggers)."""
