"""Calibrating cameras for 3D from videos of the ChArUco board (``spatial.calibration.calibrate``).

The steps and the files written are in docs/3d.md (Calibrating).
"""
