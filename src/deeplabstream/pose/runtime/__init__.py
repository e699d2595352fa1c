"""Running a model: backends, pre-processing, the estimators, an ensemble's, dynamic cropping."""
