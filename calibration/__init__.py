"""Calibrating cameras for 3D: the board, its detection, solving intrinsics and extrinsics."""
