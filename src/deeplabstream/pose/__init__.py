"""Pose estimation: model files and formats, rebuilt networks, the runtime, decoding, tracking.

The live inference worker that runs them is in ``live/processes``; pose files are ``outputs``.
"""
