"""session.json is strict JSON: a figure that was not measured never costs the file."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from deeplabstream.outputs.folder import write_json_atomic


def test_non_finite_figures_are_written_as_null_and_named_in_the_log(
    tmp_path: Path, caplog
) -> None:
    data = {
        "cameras": {"arena": {"latency_ms": {"p50": math.nan, "p99": 3.5}}},
        "health": {"longest_stall_s": math.inf, "stalls": [1.0, -math.inf]},
        "confidence": np.float64(math.nan),
    }
    with caplog.at_level(logging.WARNING):
        write_json_atomic(tmp_path / "session.json", data)
    read = json.loads((tmp_path / "session.json").read_text())  # strict: no NaN tokens
    assert read["cameras"]["arena"]["latency_ms"] == {"p50": None, "p99": 3.5}
    assert read["health"] == {"longest_stall_s": None, "stalls": [1.0, None]}
    assert read["confidence"] is None
    assert "cameras.arena.latency_ms.p50" in caplog.text
    assert "health.stalls[1]" in caplog.text
    assert not (tmp_path / "session.json.tmp").exists()
