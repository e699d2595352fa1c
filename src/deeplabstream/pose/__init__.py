"""Pose estimation: models, backends, decoding, the inference worker and pose files."""
