"""The pose files of a session: written as the stream runs, read back, finished, drawn.

``files`` writes ``<camera>.pose.csv`` and its companions (times, timing, identities, the
parquet and IBL tables), ``table`` reads a pose CSV back as arrays (ours, DeepLabCut's,
Lightning Pose's), ``recovery`` finishes what a killed worker left, and ``drawing`` draws poses
on a frame (the live view and the annotated video). The ``pose`` and ``ibl`` outputs that write
them are plugins like the others, in ``outputs/pose_output.py``.
"""
