"""Behaviour classifiers: features of a window of keypoints, label readers, the ONNX runtime.

``features`` declares the features once (``FeatureSpec``) and computes them live
(``FeatureWindow``, incremental) or offline (``features_of``, batch); ``labels`` reads
per-frame behaviour labels (our CSV, BORIS, SiMBA); ``classifier`` runs a trained model
(``BehaviourClassifier``). Training lives in ``offline/training/behaviour.py``: scikit-learn is
never imported here.
"""
