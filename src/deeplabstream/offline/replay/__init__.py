"""Offline replay: recorded videos through the live pipeline (``utils/VideoAnalyzer.py``).

docs/architecture.md, "Offline replay".
"""
