"""Behaviour classifiers: features of a window of keypoints, label readers, the ONNX runtime.

Design and file formats: docs/behaviour-classifiers.md. Training lives in
``offline/training/behaviour.py``: scikit-learn is never imported here.
"""
