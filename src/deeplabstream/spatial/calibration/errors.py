"""The one error of the calibration: the input cannot give a calibration, and what to do."""

from __future__ import annotations


class CalibrationInputError(ValueError):
    """Videos, tables or detections from which no calibration can be solved.

    The message names the file or camera concerned and what to check or change.
    """
