"""The several-animals benchmark cannot flatter: figures over every seed, decisions on the video's
clock, instances only from the same arena."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import multi_animal
from benchmarks.multi_animal import FIRST_SEED, FrameClockLearner, _figures, _Recorded, _seed_lines
from deeplabstream.experiments.triggers.geometry import Circle
from deeplabstream.hardware.simulator.arena import KEYPOINT_NAMES
from deeplabstream.live.processes.analysis.identities import POLL_S, REFIT_SAMPLES


def _case(rules: int, files: int, motion: int, seed: int) -> dict:
    def truth(switches: int) -> dict:
        return {"switches": switches, "switch_frames": [], "per_10_min": float(switches),
                "missed_pct": 1.0, "wrong_identity_pct": 0.5, "error_px": 1.2}  # fmt: skip

    def entries(lost: int, for_identity: int | None = None) -> dict:
        where = {"true_entries": 50, "lost": lost, "lost_pct": 2.0 * lost,
                 "late_median_frames": 1.0, "late_max_frames": 5}  # fmt: skip
        if for_identity is not None:
            where["lost_for_identity"] = for_identity
            where["lost_for_identity_pct"] = 2.0 * for_identity
        return {"crossing": dict(where), "elsewhere": dict(where)}

    def wrong(rows: int, for_identity: int | None = None) -> dict:
        figures = {"rows": rows, "rows_per_10_min": float(rows), "frames": []}
        if for_identity is not None:
            figures.update(rows_for_identity=for_identity,
                           rows_for_identity_per_10_min=float(for_identity))  # fmt: skip
        return figures

    return {
        "seed": seed,
        "rules": {
            **truth(rules),
            "wrong_keypoints": wrong(seed - 1, 3 * (seed - 1)),
            "wrong_keypoints_identity_known": wrong(10 * seed),
            "entries": entries(seed, seed - 1),
            "entries_unknown_as_lost": entries(2 * seed),
            "entries_identity_known": entries(1),
        },
        "files": {**truth(files), "wrong_keypoints": wrong(100 * seed)},
        "motion_only": truth(motion),
        "step_ms": {"p50": 0.3, "p99": 0.6 + seed % 2},
        "step_cpu_ms": {"p50": 0.3, "p99": 0.5},
        "learning": {"ms_per_s": 9.0},
        "load_at_start": 1.0,
        "load_at_end": 1.5,
    }


def test_every_figure_is_the_median_and_the_worst_over_the_seeds() -> None:
    results = {
        "cross": {s: _case(r, f, 34, s) for s, r, f in ((1, 0, 30), (2, 2, 34), (3, 0, 28))},
        "one_mouse": {1: {"error_px": 0.8}, 2: {"error_px": 0.9}, 3: {"error_px": 0.7}},
    }
    figures = {figure.key: figure for figure in _figures(results)}
    rules = (
        figures["cross.rules.switches_per_10_min.median"],
        figures["cross.rules.switches_per_10_min.worst"],
    )
    assert [f.value for f in rules] == [0.0, 2.0]  # one bad seed is the worst, not hidden
    assert "3 seeds" in rules[1].label and rules[1].goal == "0 at every seed"
    files = figures["cross.files.switches_per_10_min.median"]
    assert (files.value, figures["cross.files.switches_per_10_min.worst"].value) == (30.0, 34.0)
    assert files.baseline == 34.0  # the motion-only tracker on the same instances
    assert figures["cross.identity_step.p99_ms.worst"].value == 1.6
    assert figures["cross.rules.error_px.worst"].baseline == 0.9  # one mouse, the same seeds
    # Keypoints of another animal in what the rules read: the worst seed shown, the files beside.
    wrong = figures["cross.rules.wrong_keypoint_rows_per_10_min.worst"]
    assert (wrong.value, wrong.baseline, wrong.goal) == (2.0, 300.0, "0 at every seed")
    # ... those the identity let through, beside the model's own rows with the identity known.
    wrong_id = figures["cross.rules.wrong_keypoint_rows_for_identity_per_10_min.worst"]
    assert (wrong_id.value, wrong_id.baseline) == (6.0, 30.0)
    lost = figures["cross.rules.entries_lost_pct.crossing.worst"]
    assert (lost.value, lost.baseline, lost.goal) == (6.0, 12.0, "<= 2 %")
    assert figures["cross.rules.entries_lost_pct.elsewhere.median"].value == 4.0
    # What the identity lost, beside what the model's rows lose with the identity known.
    for_identity = figures["cross.rules.entries_lost_for_identity_pct.crossing.worst"]
    assert (for_identity.value, for_identity.baseline) == (4.0, 2.0)
    lines = _seed_lines(results)
    assert len(lines) == 4 and lines[2].split()[:4] == ["cross", "2", "2", "34"]


def _samples(count: int, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    return [(rng.normal(3.0 * (i % 2), 1.0, 8), i % 2) for i in range(count)]


def test_the_learner_fits_on_the_videos_clock_as_the_background_learner_would() -> None:
    """When a model comes depends on the frames' times only, never on the machine's load."""
    rng = np.random.default_rng(0)
    learner = FrameClockLearner(2, 8)
    for index, (features, identity) in enumerate(_samples(150, rng)):
        learner.add(features, identity, index / 150)  # a second of samples, no fit in add
    learner.poll(POLL_S * 0.99)
    assert learner.fits == 0 and learner.latest() is None  # before the first poll
    learner.poll(POLL_S)
    assert learner.fits == 1 and learner.latest() is not None  # anything new: fitted
    for features, identity in _samples(REFIT_SAMPLES - 1, rng):
        learner.add(features, identity, 1.5)
    learner.poll(2 * POLL_S)
    assert learner.fits == 1  # fewer new samples than a refit needs
    learner.add(*_samples(1, rng)[0], 1.6)
    learner.poll(2.5 * POLL_S)
    assert learner.fits == 1  # between two polls
    learner.poll(3 * POLL_S)
    assert learner.fits == 2 and learner.figures()["fits"] == 2


def test_recorded_instances_of_another_arena_are_refused(tmp_path: Path) -> None:
    truth = np.random.default_rng(1).uniform(0, 100, (5, 2, 6, 2))
    path = tmp_path / "cross_4242.npz"
    np.savez_compressed(path, raw=np.zeros((5, 2, 6, 3)), truth=truth, fps=30.0)
    recorded = _Recorded(path, 5)
    recorded.check(truth[:3])  # the same arena's first frames
    with pytest.raises(SystemExit, match="another arena"):
        recorded.check(truth[:3] + 1.0)
    with pytest.raises(SystemExit, match="6 are needed"):
        _Recorded(path, 6)
    with pytest.raises(SystemExit, match="missing"):
        _Recorded(tmp_path / "free_4242.npz", 5)


@pytest.mark.slow
def test_the_benchmark_writes_only_under_the_folder_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second of one case, one seed: without --out nothing is written (not in the working
    folder, not in the repository's results); with it, DIR/multi_animal.json and only that."""
    import json

    from benchmarks.common import RESULTS_DIR
    from benchmarks.multi_animal import main

    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    kept = RESULTS_DIR / "multi_animal.json"
    before = kept.stat().st_mtime_ns if kept.exists() else None
    run = ["--case", "cross", "--seeds", "1", "--seconds", "1"]
    assert main(run) == 0
    assert "not saved (no --out)" in capsys.readouterr().out
    assert list(work.iterdir()) == []
    assert (kept.stat().st_mtime_ns if kept.exists() else None) == before
    out = tmp_path / "out"
    assert main([*run, "--out", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["multi_animal.json"]
    saved = json.loads((out / "multi_animal.json").read_text(encoding="utf-8"))
    assert saved["results"]["details"]["parameters"]["seeds"] == [FIRST_SEED]
    assert "cross.rules.switches_per_10_min.worst" in saved["results"]
    assert list(work.iterdir()) == []


def _walk(frames: int) -> np.ndarray:
    """(T, 2, K, 2): animal 0 walks along y = 0 one px a frame; animal 1 stays far away."""
    whole = np.zeros((frames, 2, len(KEYPOINT_NAMES), 2))
    whole[:, 0, :, 0] = np.arange(frames)[:, None]
    whole[:, 1] = 300.0
    return whole


def test_an_entry_is_lost_for_the_identity_only_where_the_models_rows_entered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    whole = _walk(60)
    raw = np.concatenate([whole, np.full((*whole.shape[:3], 1), 0.9)], axis=-1)
    # The model's rows, in the opposite order to the animals (the oracle must put them back),
    # place animal 0 10 px off while it passes the first circle: a loss that is the model's.
    raw = raw[:, ::-1].copy()
    raw[:30, 1, :, 1] += 10.0
    first, second = Circle(20.0, 0.0, 5.0), Circle(45.0, 0.0, 5.0)
    monkeypatch.setattr(multi_animal, "_regions", lambda _whole, _social: (None, [first, second]))
    known, floor = multi_animal._entries(
        multi_animal._oracle_rows(raw, whole), None, whole, whole, "free", owner=np.arange(2)
    )
    assert (known["elsewhere"]["true_entries"], known["elsewhere"]["lost"]) == (2, 1)
    # The rules' rows: the model's, but animal 0 unknown from frame 35 on (unknown as lost).
    rules = raw[:, ::-1].copy()
    rules[35:, 0] = np.nan
    figures, lost = multi_animal._entries(rules, None, whole, whole, "free", floor=floor)
    assert figures["elsewhere"]["lost"] == 2  # both circles' entries
    assert figures["elsewhere"]["lost_for_identity"] == 1  # the second circle's only
    assert lost - floor == {("elsewhere", 1, 0, 40)}


def test_a_wrong_keypoint_is_the_identitys_only_where_the_models_row_holds_it_right() -> None:
    whole = _walk(3)
    whole[:, 1] = whole[:, 0] + [0.0, 20.0]  # animal 1 beside animal 0
    rows = np.concatenate([whole, np.full((*whole.shape[:3], 1), 0.9)], axis=-1)
    # The model's rows with the identity known: animal 1's nose on animal 0's nose in frame 1
    # (the model put it there); right in frame 2.
    oracle = rows.copy()
    oracle[1, 1, 0, :2] = whole[1, 0, 0]
    known = (oracle, multi_animal._wrong_mask(oracle, np.arange(2), whole))
    # The rules' rows, identities in the opposite order to the animals: animal 1's nose on
    # animal 0's in frames 1 (the model's point) and 2 (the identity step's doing).
    rules = rows[:, ::-1].copy()
    rules[1:, 0, 0, :2] = whole[1:, 0, 0]
    figures = multi_animal._wrong_keypoints(rules, whole, whole, known=known)
    assert (figures["keypoints"], figures["rows"]) == (2, 2)
    assert (figures["keypoints_for_identity"], figures["frames_for_identity"]) == (1, [2])
