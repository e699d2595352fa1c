"""The Ensemble Kalman Smoother offline: ``deeplabstream-eks`` (docs/ensembles.md).

A session (or replay) whose cameras ran an ensemble has every model's keypoints in each camera's
``pose_exact.csv``; ``smoothing`` hands them to the ``ensemble-kalman-smoother`` package's own
single-camera smoother and writes its output beside them (``<camera>.eks.csv``), ``command`` is
the command line.
"""
