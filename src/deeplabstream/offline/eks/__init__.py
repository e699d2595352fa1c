"""The Ensemble Kalman Smoother offline: ``deeplabstream-eks`` (docs/ensembles.md)."""
