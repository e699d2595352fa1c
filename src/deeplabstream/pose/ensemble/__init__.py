"""Several models of the same keypoints run as one: an ensemble (docs/ensembles.md).

``members``: which models, their keypoints mapped onto the first one's; ``statistics``: the
ensemble's keypoints (median, mean likelihood) and spread (variance, standard deviation) of one
frame; ``causal``: the Ensemble Kalman Smoother's forward filter, the live half of the
``ensemble-kalman-smoother`` package's model. The models run on each batch of frames as one
estimator in :mod:`pose.runtime.ensemble`.
"""
