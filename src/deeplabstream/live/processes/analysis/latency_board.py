"""The stimulus board's latency self-test, run beside an experiment (``--latency-test``).

Started on the board when the experiment opens; its reports written when it stops
(``latency_board.csv``, docs/latency-test.md).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from deeplabstream.core.errors import DeviceError, ExperimentError
from deeplabstream.hardware.stimulation import StimulationDevice
from deeplabstream.hardware.stimulation.latency import (
    LatencyTestSpec,
    run_file,
    write_board_reports,
)
from deeplabstream.hardware.stimulation.serial_device import SerialStimulator

log = logging.getLogger(__name__)

#: How long the board has to answer the start and the stop of its test.
BOARD_ANSWER_S = 1.0
#: The board reports a flash nobody answered (MISS) 1 s after it began: wait for the last one.
FLASH_REPORT_WAIT_S = 1.2


def start_latency_test(
    devices: dict[str, StimulationDevice], spec: LatencyTestSpec
) -> SerialStimulator:
    """Start the board's latency test on ``spec.device`` (the stimulus board; ExperimentError)."""
    board = devices[spec.device]
    if not isinstance(board, SerialStimulator):
        raise ExperimentError(
            f"the latency test needs the stimulus board: [Device {spec.device}] must have "
            "TYPE = serial (firmware/, docs/latency-test.md)"
        )
    record = board.start_latency_test(spec)
    if not record.wait(BOARD_ANSWER_S) or record.error is not None:
        why = record.error or "no answer within 1 s"
        raise ExperimentError(
            f"[Device {spec.device}] did not start the latency test ({why}): it needs the "
            "stimulus firmware 1.1 or later (make -C firmware flash)"
        )
    return board


def finish_latency_test(board: SerialStimulator, events_path: Path) -> None:
    """Stop the board's latency test and write its reports beside ``events_path``."""
    if board.error is None:
        time.sleep(FLASH_REPORT_WAIT_S)  # the last flash's LAT or MISS comes within 1 s
        try:
            board.stop_latency_test().wait(BOARD_ANSWER_S)
        except DeviceError as failure:
            log.error("could not stop the latency test: %s", failure)
    reports = list(board.flash_reports)
    board_file = run_file(events_path.name, "latency_board")
    write_board_reports(events_path.parent / board_file, reports)
    log.info("latency test: the board reported %d flashes", len(reports))
