"""Offline replay: recorded videos through the live pipeline (``utils/VideoAnalyzer.py``).

``videos`` (which files), ``job`` (options and result), ``session`` (one video), ``batch`` (many,
locally or on Ray), ``progress``, ``images`` (labelled images, ``utils/ImageAnalyzer.py``).
docs/architecture.md, "Offline replay".
"""
