"""Command-line tools around the live pipeline (``utils/VideoAnalyzer.py``: offline replay)."""
