"""Offline tools: replay of recorded videos, training, the reference generators."""
