"""Training, offline and never on the live path: pose models and behaviour classifiers.

``train``: the project's own pose models (from DeepLabCut labels or simulated arena frames);
``behaviour``: behaviour classifiers from pose tables and labels, exported to ONNX.
"""
