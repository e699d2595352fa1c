"""Behaviour classifiers: features of a window of keypoints, label readers, the ONNX runtime.

docs/behaviour-classifiers.md. Training (scikit-learn) is in ``offline/training/behaviour.py``.
"""
