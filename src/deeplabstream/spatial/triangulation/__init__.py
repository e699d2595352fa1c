"""Live 3D: keypoints of synchronised views triangulated with a calibration."""
