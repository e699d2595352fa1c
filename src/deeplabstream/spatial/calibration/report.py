"""Writing ``calibration.toml`` (Anipose's layout) and ``calibration_report.json`` (docs/3d.md)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deeplabstream.core.pinhole import write_calibration
from deeplabstream.hardware.simulator.board import BOARD, BoardSpec
from deeplabstream.spatial.calibration.solve import CalibrationResult

REPORT_NAME = "calibration_report.json"


def describe_board(spec: BoardSpec = BOARD) -> str:
    """Return the board in words, as the metadata gives it."""
    return (
        f"ChArUco {spec.squares_x} x {spec.squares_y} squares of {spec.square_mm:g} mm, "
        f"{spec.marker_mm:g} mm markers, {spec.dictionary}"
    )


def report_document(
    result: CalibrationResult, pairing: str, spec: BoardSpec = BOARD
) -> dict[str, Any]:
    """Return the report as a JSON-ready dictionary (docs/3d.md, What it writes)."""
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "board": describe_board(spec),
        "world": "floor frame: mm, z up, floor at z = 0",
        "pairing": pairing,
        "frame_sets_used": result.frame_sets_used,
        "floor_sets": result.floor_sets,
        "error_mean_px": round(result.error_mean_px, 4),
        "error_p95_px": round(result.error_p95_px, 4),
        "cameras": {
            camera.name: {
                "detections": result.figures[camera.name].detections,
                "frame_sets_used": result.figures[camera.name].frame_sets_used,
                "error_mean_px": round(result.figures[camera.name].error_mean_px, 4),
                "error_p95_px": round(result.figures[camera.name].error_p95_px, 4),
                "lens_rms_px": round(result.figures[camera.name].lens_rms_px, 4),
                "center_mm": [round(float(v), 2) for v in camera.center],
            }
            for camera in result.cameras
        },
    }


def calibration_metadata(report: dict[str, Any]) -> dict[str, Any]:
    """Return the flat ``[metadata]`` table of ``calibration.toml`` from the report."""
    metadata: dict[str, Any] = {
        "error": report["error_mean_px"],
        "error_p95_px": report["error_p95_px"],
        "board": report["board"],
        "world": report["world"],
        "frame_sets_used": report["frame_sets_used"],
        "floor_sets": report["floor_sets"],
        "pairing": report["pairing"],
        "created": report["created"],
    }
    for name, figures in report["cameras"].items():
        metadata[f"{name}_detections"] = figures["detections"]
        metadata[f"{name}_error_mean_px"] = figures["error_mean_px"]
        metadata[f"{name}_error_p95_px"] = figures["error_p95_px"]
    return metadata


def write_outputs(
    result: CalibrationResult, output: Path, pairing: str, spec: BoardSpec = BOARD
) -> Path:
    """Write ``output`` (calibration.toml) and the report beside it; return the report's path."""
    report = report_document(result, pairing, spec)
    report["calibration"] = output.name
    write_calibration(output, result.cameras, calibration_metadata(report))
    report_path = output.with_name(REPORT_NAME)
    temporary = report_path.with_name(report_path.name + ".tmp")
    temporary.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, report_path)
    return report_path
