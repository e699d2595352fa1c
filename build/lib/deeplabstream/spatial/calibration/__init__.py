"""Calibrating cameras for 3D from videos of the ChArUco board (``spatial.calibration.calibrate``).

``sources`` pairs the cameras' frames, ``detection`` finds the board, ``intrinsics`` solves each
lens, ``extrinsics`` chains the cameras, ``refine`` adjusts everything jointly, ``solve`` ties
the steps together and moves the result to the floor frame, ``report`` writes
``calibration.toml`` and ``calibration_report.json``, ``calibrate`` is the command. The board
itself is :mod:`hardware.simulator.board`, shared with the simulated cameras that draw it.
"""
