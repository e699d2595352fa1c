"""The folders the frameworks write around a trained model: accepted with the model inside, or
refused with the command that makes what this program runs (pose.formats.framework_folders).

The folders are laid out as DeepLabCut 3.0, sleap-nn and Lightning Pose write them, around real
files: the real DeepLabCut 3.0.2 export, sleap-nn training folder and Lightning Pose model of
../shared/data (tests skip without it), the sleap-nn exports of tests/fixtures, and training
snapshots saved here with DeepLabCut's keys (metadata, model, scheduler: its
TorchSnapshotManager's dict). Converted graphs go to a temporary cache folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from deeplabstream.pose.formats.conversion import CACHE_ENV
from deeplabstream.pose.loading import (
    BUNDLED_MODEL,
    check_backend,
    check_model,
    converted_on_first_use,
    load_model,
    model_animals,
    model_keypoints,
    model_to_load,
)
from deeplabstream.pose.model import ModelError
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT, shared_data
from tests.support.processes import only_session, run_cli

DLC_EXPORT = (
    "dlc3-openfield-cspnext_s/model/"
    "DLC_openfield_NetType.CSPNEXT_S_iteration-0_shuffle-2_snapshot-best-60.pt"
)
DLC_CLIP = "dlc3-openfield-cspnext_s/clip/m3v1mp4_first100.mp4"
SLEAP_TRAINING = "sleap-flies/model/flies_bottomup_tiny"
LP_MODEL = "lp-mirror-mouse-resnet18/model"
FIXTURES = PROJECT_ROOT / "tests" / "fixtures"
SLEAP_SINGLE_EXPORT = FIXTURES / "sleap_single_openfield" / "export"
SLEAP_TOPDOWN = FIXTURES / "sleap_topdown_flies"
SHUFFLE = "openfieldOct30-trainset95shuffle2"  # <Task><date>-trainset<percent>shuffle<n>


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private cache folder for converted graphs, for the whole module."""
    folder = tmp_path_factory.mktemp("converted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


def refusal(path: Path) -> str:
    """The message of the refusal of ``path`` (check_model and load_model say the same)."""
    with pytest.raises(ModelError) as checked:
        check_model(path)
    with pytest.raises(ModelError) as loaded:
        load_model(path)
    assert str(checked.value) == str(loaded.value)
    return str(checked.value)


# --- DeepLabCut --------------------------------------------------------------------------------


def save_snapshot(path: Path) -> Path:
    """A training snapshot with the keys DeepLabCut's TorchSnapshotManager saves."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"metadata": {"metrics": {}, "epoch": 1}, "model": {"w": torch.zeros(2)}}
    torch.save({**state, "scheduler": {"last_epoch": 1}}, path)
    return path


def dlc_project(
    root: Path,
    snapshots: tuple[str, ...] = ("snapshot-025.pt", "snapshot-050.pt", "snapshot-best-060.pt"),
    *,
    iteration_in_config: int = 0,
    shuffle: str = SHUFFLE,
) -> Path:
    """A DeepLabCut 3.0 project as DeepLabCut lays it out, with a trained shuffle, no export."""
    project = root / "openfield-Pranav-2018-10-30"
    project.mkdir(parents=True, exist_ok=True)
    config = {
        "Task": "openfield",
        "iteration": iteration_in_config,
        "TrainingFraction": [0.8, 0.95],
    }
    (project / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    shuffle_folder = project / "dlc-models-pytorch" / "iteration-0" / shuffle
    (shuffle_folder / "test").mkdir(parents=True, exist_ok=True)
    for name in snapshots:
        save_snapshot(shuffle_folder / "train" / name)
    (shuffle_folder / "train" / "pytorch_config.yaml").write_text("net_type: resnet_50\n")
    return project


def export_into(project: Path, export: Path, folder: str = "DLC_openfield_resnet_50") -> Path:
    """Place ``export`` where deeplabcut.export_model writes it (a link to the real file)."""
    target = project / "exported-models-pytorch" / f"{folder}_iteration-0_shuffle-2" / export.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(export)
    return target


def train_folder(project: Path, shuffle: str = SHUFFLE) -> Path:
    return project / "dlc-models-pytorch" / "iteration-0" / shuffle / "train"


def test_deeplabcut_training_folders_are_refused_with_the_export_command(tmp_path: Path) -> None:
    project = dlc_project(tmp_path)
    train = train_folder(project)
    config = json.dumps(str(project / "config.yaml"))
    # the best snapshot is DeepLabCut's last (index 2); trainset 95 is TrainingFraction[1]
    best = f"deeplabcut.export_model({config}, shuffle=2, trainingsetindex=1, snapshotindex=2)"
    for path in (
        project,
        project / "dlc-models-pytorch",
        project / "dlc-models-pytorch" / "iteration-0",
        train.parent,
        train,
    ):
        message = refusal(path)
        assert message.startswith(f"{path}: a DeepLabCut "), message
        assert f"`{best}`" in message, message
        assert "snapshot-025.pt, snapshot-050.pt, snapshot-best-060.pt" in message
        assert str(project / "exported-models-pytorch") in message  # where to point next


def test_a_training_snapshot_is_refused_with_its_own_snapshot_index(tmp_path: Path) -> None:
    train = train_folder(dlc_project(tmp_path))
    config = json.dumps(str(train.parents[3] / "config.yaml"))
    for index, name in enumerate(("snapshot-025.pt", "snapshot-050.pt", "snapshot-best-060.pt")):
        message = refusal(train / name)
        assert "a DeepLabCut training snapshot" in message and "not an exported model" in message
        command = f"deeplabcut.export_model({config}, shuffle=2, trainingsetindex=1, "
        assert f"`{command}snapshotindex={index})`" in message, message


def test_a_snapshot_outside_its_training_folder_is_refused_by_its_keys(tmp_path: Path) -> None:
    # A snapshot copied and renamed: its keys tell what it is (no 'config', no 'pose').
    moved = save_snapshot(tmp_path / "my_model.pt")
    message = refusal(moved)
    assert "a DeepLabCut training snapshot" in message and "deeplabcut.export_model(" in message
    assert "found ['metadata', 'model', 'scheduler']" not in message


def test_the_iteration_prefix_and_detector_are_filled_in(tmp_path: Path) -> None:
    # The project moved on to iteration 1; the shuffle trained in iteration-0 needs iteration=0.
    # A top-down model's detector snapshots are indexed apart (detector_snapshot_index).
    names = ("snapshot-100.pt", "snapshot-best-150.pt", "snapshot-detector-best-020.pt")
    project = dlc_project(tmp_path, names, iteration_in_config=1)
    message = refusal(train_folder(project))
    # deeplabcut.export_model has no detector_snapshot_index in DeepLabCut 3.0.x (TypeError):
    # the PyTorch engine's own export_model has (test_printed_commands.py checks both).
    expected = (
        "deeplabcut.pose_estimation_pytorch.apis.export_model("
        f"{json.dumps(str(project / 'config.yaml'))}, shuffle=2, "
        "trainingsetindex=1, snapshotindex=1, detector_snapshot_index=0, iteration=0)"
    )
    assert f"`{expected}`" in message, message
    detector = refusal(train_folder(project) / "snapshot-detector-best-020.pt")
    assert "of a top-down model's detector" in detector and f"`{expected}`" in detector


def test_several_shuffles_give_one_command_each(tmp_path: Path) -> None:
    project = dlc_project(tmp_path)
    dlc_project(tmp_path, ("snapshot-best-010.pt",), shuffle="openfieldOct30-trainset80shuffle1")
    message = refusal(project)
    assert "2 trained shuffles" in message
    assert "shuffle=1, snapshotindex=0)`" in message  # trainset 80: TrainingFraction[0], omitted
    assert "shuffle=2, trainingsetindex=1, snapshotindex=2)`" in message


def test_a_tensorflow_project_is_refused_with_what_to_do(tmp_path: Path) -> None:
    project = tmp_path / "old-project"
    (project / "dlc-models" / "iteration-0").mkdir(parents=True)
    (project / "config.yaml").write_text("Task: old\n")
    assert "TensorFlow engine" in refusal(project)


def test_an_empty_export_folder_names_its_shuffle_command(tmp_path: Path) -> None:
    project = dlc_project(tmp_path)
    empty = project / "exported-models-pytorch" / "DLC_openfield_resnet_50_iteration-0_shuffle-2"
    empty.mkdir(parents=True)
    for path in (empty, empty.parent):
        message = refusal(path)
        assert "no .pt export" in message and "shuffle=2, trainingsetindex=1" in message


def test_several_exports_are_refused_listing_them(tmp_path: Path) -> None:
    export = shared_data(DLC_EXPORT)
    project = dlc_project(tmp_path)
    first = export_into(project, export)
    second = first.with_name("DLC_openfield_snapshot-050.pt")
    second.symlink_to(export)
    message = refusal(project)
    assert "2 DeepLabCut exports" in message
    assert first.name in message and second.name in message and "the one to run" in message


def test_every_folder_around_one_export_gives_that_export(tmp_path: Path, cache: Path) -> None:
    export = shared_data(DLC_EXPORT)
    project = dlc_project(tmp_path)  # trained snapshots too: the export wins
    exported = export_into(project, export)
    for path in (project, project / "exported-models-pytorch", exported.parent):
        assert model_to_load(path) == exported
        check_model(path)
        assert model_keypoints(path) == ("snout", "leftear", "rightear", "tailbase")
    # what the window and the preflight ask before a start sees the export through the folder
    assert converted_on_first_use(project) and not converted_on_first_use(train_folder(project))
    check_backend(project, "pytorch")  # the rebuilt network runs on pytorch: no refusal
    assert model_animals(project, 3) == 1
    with pytest.raises(ModelError, match=r"deeplabcut\.export_model"):
        check_backend(train_folder(project), "pytorch")
    # the folder the fixture keeps it in (beside its config and notes) holds one model too
    assert model_to_load(export.parent) == export


@pytest.mark.slow
def test_a_session_on_the_project_folder_names_the_export_in_session_json(
    tmp_path: Path, cache: Path
) -> None:
    exported = export_into(dlc_project(tmp_path / "lab"), shared_data(DLC_EXPORT))
    project = exported.parents[2]
    settings = write_settings(
        tmp_path,
        f"[Camera openfield]\nSOURCE = video\nPATH = {shared_data(DLC_CLIP)}\nPACING = native\n",
    )
    result = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--model",
        str(project),
        "--frames",
        "10",
        "--output-dir",
        str(tmp_path / "out"),
        timeout=300,
        env={CACHE_ENV: str(cache)},
    )
    assert result.returncode == 0, result.stderr
    model = json.loads((only_session(tmp_path / "out") / "session.json").read_text())["pose"]
    assert model["model"]["model_path"] == str(project)  # what the lab named
    assert model["model"]["model_found"] == str(exported)  # the export that ran
    assert model["model"]["source_file"] == str(exported)  # converted from it
    refused = run_cli(
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--model",
        str(train_folder(project)),
        "--frames",
        "10",
        "--output-dir",
        str(tmp_path / "refused"),
        timeout=120,
    )
    assert refused.returncode != 0
    assert "deeplabcut.export_model(" in refused.stderr + refused.stdout


# --- sleap-nn ----------------------------------------------------------------------------------


def sleap_training(folder: Path, config: Path) -> Path:
    """A sleap-nn training folder: its training config and a checkpoint (no export)."""
    folder.mkdir(parents=True)
    shutil.copy(config, folder / "training_config.yaml")
    (folder / "best.ckpt").write_bytes(b"checkpoint")
    return folder


def link_export(source: Path, target: Path) -> Path:
    """A copy of a sleap-nn export folder made of links to its files."""
    target.mkdir(parents=True)
    for file in source.iterdir():
        (target / file.name).symlink_to(file)
    return target


def test_a_sleap_training_folder_is_refused_with_the_export_command() -> None:
    training = shared_data(SLEAP_TRAINING)  # as sleap-nn 0.3.5 wrote it
    command = f"`sleap-nn export {json.dumps(str(training))} --format onnx`"
    for path in (training, training / "best.ckpt", training.parent):
        message = refusal(path)
        assert "a sleap-nn training folder" in message and "bottomup" in message, message
        assert command in message and str(training / "exported") in message
        assert "--input-height" in message  # the frame size is baked into the graph


def test_a_sleap_training_folder_with_its_export_gives_the_export(tmp_path: Path) -> None:
    training = sleap_training(tmp_path / "single", SLEAP_SINGLE_EXPORT / "training_config.yaml")
    exported = link_export(SLEAP_SINGLE_EXPORT, training / "exported")  # sleap-nn's default
    assert model_to_load(training) == exported
    description = load_model(training)
    assert (description.named_path, description.found_model) == (training, exported)
    assert load_model(exported).named_path is None  # the export itself named: nothing to add
    with pytest.raises(ModelError, match="its folder holds the export"):
        check_model(training / "best.ckpt")


def test_sleap_top_down_stages_are_exported_together(tmp_path: Path) -> None:
    configs = SLEAP_TOPDOWN / "training"
    models = tmp_path / "models"
    centroid = sleap_training(models / "centroid", configs / "flies_centroid_tiny.yaml")
    instance = sleap_training(
        models / "centered_instance", configs / "flies_centered_instance_tiny.yaml"
    )
    pair = (
        f"`sleap-nn export {json.dumps(str(centroid))} {json.dumps(str(instance))} --format onnx`"
    )
    for path in (models, centroid, instance):
        message = refusal(path)
        assert pair in message, message
        assert str(centroid / "exported_topdown") in message
    exported = link_export(SLEAP_TOPDOWN / "export_topdown", centroid / "exported_topdown")
    assert model_to_load(models) == exported == model_to_load(centroid)
    assert load_model(models).found_model == exported


def test_a_folder_of_several_sleap_exports_is_refused_listing_them(tmp_path: Path) -> None:
    single = sleap_training(tmp_path / "single", SLEAP_SINGLE_EXPORT / "training_config.yaml")
    link_export(SLEAP_SINGLE_EXPORT, single / "exported")
    link_export(SLEAP_SINGLE_EXPORT, single / "exported_again")
    message = refusal(single)
    assert "2 sleap-nn exports" in message and "exported_again" in message


def test_a_sleap_1_model_is_refused(tmp_path: Path) -> None:
    legacy = tmp_path / "baseline_model"
    legacy.mkdir()
    (legacy / "best_model.h5").write_bytes(b"hdf5")
    (legacy / "training_config.json").write_text("{}")
    assert "SLEAP 1.x (TensorFlow)" in refusal(legacy)


def test_a_folder_with_one_sleap_export_below_gives_it() -> None:
    onnx = shared_data("sleap-flies/onnx")  # the export folder and a notes file beside it
    assert model_to_load(onnx) == onnx / "flies_bottomup_tiny_onnx"


# --- Lightning Pose ----------------------------------------------------------------------------


def test_lightning_pose_checkpoint_folders_give_their_checkpoint() -> None:
    model = shared_data(LP_MODEL)
    (checkpoint,) = (model / "tb_logs").rglob("*.ckpt")
    for path in (model / "tb_logs", checkpoint.parent.parent, checkpoint.parent):
        assert model_to_load(path) == checkpoint
        check_model(path)


def test_lightning_pose_export_folder_gives_its_model() -> None:
    model = shared_data(LP_MODEL)
    description = load_model(model / "exports_onnx")
    assert description.model_file.name.endswith("_fp32.onnx")  # as the model folder picks
    assert (description.named_path, description.found_model) == (model / "exports_onnx", model)


def test_lightning_pose_folders_without_a_model_are_refused(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "exports_trt").mkdir(parents=True)
    shutil.copy(shared_data(f"{LP_MODEL}/config.yaml"), model / "config.yaml")
    message = refusal(model)
    assert f"`litpose export {model} --runtime onnx --onnx-precision fp32`" in message
    assert "TensorRT engines" in message
    checkpoints = model / "tb_logs" / "run" / "version_0" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for name in ("epoch=1-step=10.ckpt", "epoch=2-step=20.ckpt"):
        (checkpoints / name).write_bytes(b"checkpoint")
    message = refusal(model / "tb_logs")
    assert "2 Lightning Pose checkpoints" in message and "epoch=2-step=20.ckpt" in message


# --- any folder of models --------------------------------------------------------------------


def test_a_folder_of_models_gives_its_one_model_and_refuses_several(tmp_path: Path) -> None:
    one, several = tmp_path / "one", tmp_path / "several"
    (one / "session_2024").mkdir(parents=True)  # two levels down, as Hydra's date/time folders
    (one / "session_2024" / "mouse").symlink_to(BUNDLED_MODEL, target_is_directory=True)
    assert model_to_load(one) == one / "session_2024" / "mouse"
    assert load_model(one).named_path == one
    several.mkdir()
    for name in ("mouse_a", "mouse_b"):
        (several / name).symlink_to(BUNDLED_MODEL, target_is_directory=True)
    message = refusal(several)
    assert "2 models in this folder" in message and str(several / "mouse_b") in message
