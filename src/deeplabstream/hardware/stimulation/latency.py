"""The board's side of the latency self-test: what to ask of it and what it reports per flash.

docs/latency-test.md.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

BOARD_REPORT_COLUMNS = (
    "flash",
    "on_us",
    "command_us",
    "board_ms",
    "answer_id",
    "answer_command",
    "answer_written_ns",
)


@dataclass(frozen=True)
class LatencyTestSpec:
    """One run of the board's latency test (docs/latency-test.md); ``seed`` None: the board's."""

    device: str
    channel: int
    min_interval_s: float
    max_interval_s: float
    on_s: float
    seed: int | None = None


@dataclass
class FlashReport:
    """One flash as the board reported it; ``command_us`` is None for a flash nobody answered.

    Board times are the board's microseconds, unwrapped.
    """

    flash: int
    on_us: int
    command_us: int | None
    answer_id: int | None = None
    answer_command: str | None = None
    answer_written_ns: int | None = None

    @property
    def board_ms(self) -> float | None:
        """Light on -> answering command complete, as the board measured it (ms)."""
        return None if self.command_us is None else (self.command_us - self.on_us) / 1e3


def run_file(events_file: str, stem: str) -> str:
    """Return the file of one experiment run named like its events file (``.run2`` kept)."""
    return (
        stem + events_file[len("events") :] if events_file.startswith("events") else stem + ".csv"
    )


def write_board_reports(path: Path, reports: list[FlashReport]) -> None:
    """Write ``latency_board.csv``: one row per flash, in flash order."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(BOARD_REPORT_COLUMNS)
        for report in sorted(reports, key=lambda r: r.flash):
            writer.writerow(
                [
                    report.flash,
                    report.on_us,
                    _blank(report.command_us),
                    "" if report.board_ms is None else f"{report.board_ms:.3f}",
                    _blank(report.answer_id),
                    _blank(report.answer_command),
                    _blank(report.answer_written_ns),
                ]
            )


def read_board_reports(path: Path) -> list[FlashReport]:
    """Return the reports of a ``latency_board.csv``."""
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    return [
        FlashReport(
            flash=int(row["flash"]),
            on_us=int(row["on_us"]),
            command_us=_int_or_none(row["command_us"]),
            answer_id=_int_or_none(row["answer_id"]),
            answer_command=row["answer_command"] or None,
            answer_written_ns=_int_or_none(row["answer_written_ns"]),
        )
        for row in rows
    ]


def _blank(value: object) -> object:
    return "" if value is None else value


def _int_or_none(text: str) -> int | None:
    return int(text) if text else None
