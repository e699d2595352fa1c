"""Running a model: backends, pre-processing, the estimator, dynamic cropping."""
