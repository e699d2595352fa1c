"""The single-instance benchmark runs its four variants on the same frames, in turns."""

from __future__ import annotations

import pytest

from benchmarks.sleap_single import CLIP, VARIANTS, clip_frames, figures_of, measure


def test_each_variant_runs_every_frame_and_the_whole_frame_equals_sleap_nns_graph() -> None:
    if not CLIP.is_file():
        pytest.skip(f"the open-field clip is not here ({CLIP})")
    frames = clip_frames(20)
    measured = measure(frames, threads=2, fps=0)
    assert {variant: len(measured["samples"][variant]) for variant in VARIANTS} == dict.fromkeys(
        VARIANTS, 20
    )
    assert measured["worst_px"] == 0.0  # the same keypoints as sleap-nn's own graph
    assert measured["cropped"] > 0 and measured["crop_sizes"]  # the mouse is followed
    names = {figure.key for figure in figures_of(measured, len(frames))}
    assert "dynamic_crop_frame_to_keypoints_p99_ms" in names
    assert "whole_frame_spinning_frame_to_keypoints_p50_ms" in names
    assert all(cpu > 0 for cpu in measured["cpu_ms_per_frame"].values())
