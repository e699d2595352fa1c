"""Calibrating cameras for 3D from videos of the ChArUco board (docs/3d.md, "Calibrating")."""
