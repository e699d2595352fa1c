"""Several models of the same keypoints run as one: an ensemble. Design: docs/ensembles.md."""
