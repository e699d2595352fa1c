"""The pose files of a session: written as the stream runs, read back, finished, drawn.

``files`` writes them, ``table`` reads a pose CSV back, ``recovery`` finishes what a killed
worker left, ``drawing`` draws poses; the outputs are in ``outputs/pose_output.py``.
"""
