"""Pose estimation: model files and formats, rebuilt networks, the runtime, decoding, tracking."""
