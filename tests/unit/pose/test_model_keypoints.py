"""A model's keypoint names, read without converting or running it, kept while it is unchanged."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from deeplabstream.pose.formats import dlc3, lightning_ckpt
from deeplabstream.pose.loading import BUNDLED_MODEL, model_keypoints
from deeplabstream.pose.model import ModelError
from tests.support.paths import shared_data

ARENA = ("nose", "left_ear", "right_ear", "neck", "body_center", "tail_base")


def test_the_bundled_models_keypoints() -> None:
    assert model_keypoints(None) == ARENA
    assert model_keypoints(BUNDLED_MODEL) == ARENA


def test_a_changed_model_is_read_again(tmp_path: Path) -> None:
    model = tmp_path / "arena"
    shutil.copytree(BUNDLED_MODEL, model)
    assert model_keypoints(model) == ARENA
    description = model / "model.json"
    data = json.loads(description.read_text())
    data["keypoints"] = ["snout", *data["keypoints"][1:]]
    data["skeleton"] = [
        [("snout" if k == "nose" else k) for k in pair] for pair in data["skeleton"]
    ]
    description.write_text(json.dumps(data))
    later = description.stat().st_mtime_ns + 1_000_000_000  # a different modification time
    os.utime(description, ns=(later, later))
    assert model_keypoints(model)[0] == "snout"


def test_a_missing_model_is_the_model_checks_message(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model not found"):
        model_keypoints(tmp_path / "nothing")


def test_a_model_folder_the_disk_cannot_read_is_a_model_error_with_the_disks_message(
    tmp_path: Path,
) -> None:
    model = tmp_path / "arena"
    shutil.copytree(BUNDLED_MODEL, model)
    (model / "gone.onnx").symlink_to(tmp_path / "nowhere")  # its stat fails: FileNotFoundError
    with pytest.raises(ModelError) as raised:
        model_keypoints(model)
    assert isinstance(raised.value.__cause__, FileNotFoundError)
    assert str(raised.value) == str(raised.value.__cause__)  # the message the user saw before


def test_a_deeplabcut_export_is_read_without_converting_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    export = next(shared_data("dlc3-openfield-cspnext_s/model").glob("*.pt"))

    def no_conversion(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the keypoints must not need a conversion")

    monkeypatch.setattr(dlc3, "load_deeplabcut", no_conversion)
    monkeypatch.setattr(dlc3, "read_export", no_conversion)  # nor the weights
    assert model_keypoints(export) == ("snout", "leftear", "rightear", "tailbase")


def test_lightning_pose_checkpoint_and_export_and_sleap_keypoints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = shared_data("lp-mirror-mouse-resnet18/model")
    exported = model_keypoints(folder)
    assert exported[:2] == ("paw1LH_top", "paw2LF_top") and len(exported) == 17
    checkpoint = next((folder / "tb_logs").rglob("*.ckpt"))

    def no_weights(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the checkpoint's weights must not be read")

    monkeypatch.setattr(lightning_ckpt, "read_checkpoint", no_weights)
    assert model_keypoints(checkpoint) == exported
    sleap = shared_data("sleap-flies/onnx/flies_bottomup_tiny_onnx")
    assert model_keypoints(sleap)[:3] == ("head", "thorax", "abdomen")
