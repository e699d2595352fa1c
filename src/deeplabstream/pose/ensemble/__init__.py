"""Several models of the same keypoints run as one: an ensemble.

``members`` maps their keypoints, ``statistics`` combines one frame, ``causal`` is EKS's forward
filter; :mod:`pose.runtime.ensemble` runs them as one estimator. Design: docs/ensembles.md.
"""
