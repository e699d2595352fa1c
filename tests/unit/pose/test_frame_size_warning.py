"""A model run on frames of another size than it was exported or trained at: the warning's text."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from deeplabstream.pose.model import ModelDescription, frame_size_warning


def _model(framework: str, trained: tuple[int, int] | None) -> ModelDescription:
    return ModelDescription(
        name="m",
        framework=framework,
        model_file=Path("m.onnx"),
        keypoints=("nose",),
        input_height=64,
        input_width=64,
        trained_size=trained,
    )


def test_a_sleap_export_at_another_size_is_named_with_both_sizes_and_the_fix() -> None:
    text = frame_size_warning(_model("sleap-nn", (1024, 1024)), "arena", 384, 384)
    assert text is not None
    assert text.startswith(
        "camera 'arena': the model m (sleap-nn) was exported (traced) at 1024x1024"
    )
    assert "are 384x384" in text and "not validated" in text
    assert "--input-height 384 --input-width 384" in text


def test_a_lightning_pose_model_names_its_labelled_frames() -> None:
    text = frame_size_warning(_model("lightning-pose", (406, 396)), "side", 480, 640)
    assert text is not None and "trained on labelled frames at 396x406" in text
    assert "are 640x480" in text


def test_no_warning_at_the_size_or_without_one() -> None:
    assert frame_size_warning(_model("sleap-nn", (1024, 1024)), "arena", 1024, 1024) is None
    assert frame_size_warning(_model("deeplabcut", None), "arena", 480, 640) is None
    # a model fed at the camera's size keeps the size it was made for
    sized = dataclasses.replace(_model("sleap-nn", (1024, 1024)), any_input_size=True)
    assert sized.at_input_size(384, 384).trained_size == (1024, 1024)
