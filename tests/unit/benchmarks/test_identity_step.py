"""The identity step's benchmark tells two versions' decisions apart, not only their times."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from benchmarks import identity_step
from deeplabstream.pose.tracking import appearance, identities, tracker

SRC = Path(identity_step.__file__).resolve().parents[1] / "src"


def _frame(withheld_keypoint: bool = False, unnamed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(2 * 3 * 3, dtype=np.float64).reshape(2, 3, 3)
    rows[1, 2] = np.nan  # an animal's keypoint the model did not find
    if withheld_keypoint:
        rows[0, 1, :2] = np.nan
    return rows, np.array([False, unnamed])


def test_a_frame_is_read_the_same_only_with_the_same_keypoints_and_names() -> None:
    assert identity_step._same_reading(_frame(), _frame())  # NaN where both have NaN
    assert not identity_step._same_reading(_frame(), _frame(withheld_keypoint=True))
    assert not identity_step._same_reading(_frame(), _frame(unnamed=True))


class _UnnamingKeeper(identities.IdentityKeeper):
    """A changed step: every animal unnamed whole (what the rules read differs at every frame)."""

    def update(self, time_s: float, instances: np.ndarray, frame: np.ndarray | None) -> np.ndarray:
        rows = super().update(time_s, instances, frame)
        self.unnamed = np.ones(self.animals, bool)
        self.withheld = np.ones_like(self.withheld)
        return rows


def test_a_changed_step_is_read_differently_at_every_frame() -> None:
    args = argparse.Namespace(case="cross", seed=7301, instances=None)
    changed = SimpleNamespace(IdentityKeeper=_UnnamingKeeper)
    versions = {
        "this": (identities, tracker, appearance),
        "baseline": (changed, tracker, appearance),
    }
    took, cpu, differing = identity_step._one_run(args, 12, versions)  # type: ignore[arg-type]
    assert differing == list(range(12))
    assert [len(took[name]) for name in versions] == [12, 12]
    assert [len(cpu[name]) for name in versions] == [12, 12]


def test_a_version_beside_itself_reads_every_frame_the_same(tmp_path: Path) -> None:
    argv = ["--baseline", str(SRC), "--case", "cross", "--seconds", "1", "--out", str(tmp_path)]
    assert identity_step.main(argv) == 0
    saved = json.loads((tmp_path / "identity_step.json").read_text(encoding="utf-8"))
    runs = saved["results"]["details"]["runs"]
    assert [run["differing_frames"] for run in runs] == [0]
    assert saved["results"]["fastest_p99_ms"] > 0
    assert saved["baseline"]["clock_p99_ms_worst_run"] > 0
