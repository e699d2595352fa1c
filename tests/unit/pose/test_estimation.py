"""The one estimator interface (pose.estimation) and the one place that picks a model's kind."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deeplabstream.pose.decoding.cropzoom import BoxRule
from deeplabstream.pose.estimation import PoseEstimator
from deeplabstream.pose.formats.dlc3_topdown import (
    CropSettings,
    DlcTopDownDecoding,
    DlcTopDownEstimator,
)
from deeplabstream.pose.formats.lightning_context import ContextStages
from deeplabstream.pose.formats.lightning_cropzoom import CropZoomStages
from deeplabstream.pose.loading import load_model, open_estimator
from deeplabstream.pose.model import ModelDescription
from deeplabstream.pose.runtime.backends import open_backend
from deeplabstream.pose.runtime.context import ContextEstimator
from deeplabstream.pose.runtime.cropzoom import CropZoomEstimator
from deeplabstream.pose.runtime.ensemble import EnsembleEstimator
from deeplabstream.pose.runtime.estimator import NetworkEstimator

SHAPE = (120, 160, 3)


class _Backend:
    """A network that is opened and never run: the kinds are only picked here (mock)."""

    def __init__(self, description: ModelDescription) -> None:
        self.description = description

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        raise AssertionError("the estimator was only to be opened")


def _kinds() -> dict[str, tuple[ModelDescription, type, tuple[str, ...]]]:
    """Each kind's stand-in description, its estimator and the second graphs it opens."""
    own = load_model(None)  # the bundled model: a network and its decoder
    topdown = DlcTopDownDecoding(CropSettings(64, 64), Path("pose.onnx"), "rtmpose_s", "SSDLite")
    pair = CropZoomStages(Path("cropzoom.yaml"), own, own, BoxRule(), ())
    context = ContextStages(Path("heads.onnx"), (8, 4, 4))
    return {
        "network": (own, NetworkEstimator, ()),
        "dlc top-down": (
            dataclasses.replace(own, framework="deeplabcut", decoding=topdown),
            DlcTopDownEstimator,
            ("pose.onnx",),
        ),
        "crop-zoom": (dataclasses.replace(own, decoding=pair), CropZoomEstimator, ("model.onnx",)),
        "context": (dataclasses.replace(own, decoding=context), ContextEstimator, ("heads.onnx",)),
    }


@pytest.mark.parametrize("kind", ["network", "dlc top-down", "crop-zoom", "context"])
def test_open_estimator_picks_each_kind_and_opens_its_second_graph_mock_backends(
    kind: str,
) -> None:
    description, expected, second_graphs = _kinds()[kind]
    opened: list[ModelDescription] = []

    def open_stage(stage: ModelDescription) -> Any:
        opened.append(stage)
        return _Backend(stage)

    estimator = open_estimator(
        description, _Backend(description), SHAPE, max_batch=3, open_stage=open_stage
    )
    assert type(estimator) is expected
    assert tuple(Path(stage.model_file).name for stage in opened) == second_graphs
    assert estimator.animals == 1 and estimator.description is description


def test_open_estimator_hands_on_the_batch_and_the_crop_source_mock_backends() -> None:
    kinds = _kinds()
    network = open_estimator(kinds["network"][0], _Backend(kinds["network"][0]), SHAPE, max_batch=3)
    assert isinstance(network, NetworkEstimator) and network.batch == 3
    assert network.crop_from == "same_frame"  # a model of one stage has no crops to source
    context, _, _ = kinds["context"]
    found = open_estimator(
        context, _Backend(context), SHAPE, max_batch=5, open_stage=lambda stage: _Backend(stage)
    )
    assert isinstance(found, ContextEstimator) and found.batch == 5
    topdown, _, _ = kinds["dlc top-down"]
    two_stage = open_estimator(
        topdown,
        _Backend(topdown),
        SHAPE,
        crop_from="previous_frame",
        open_stage=lambda stage: _Backend(stage),
    )
    assert two_stage.two_stage and two_stage.crop_from == "previous_frame"
    assert two_stage.previous is not None


def test_a_kind_without_a_capability_reads_its_default_and_estimate_is_the_first_animal() -> None:
    description = load_model(None)
    backend = open_backend(description, "onnxruntime", "cpu", 1)
    try:
        estimator: PoseEstimator = open_estimator(description, backend, SHAPE, max_batch=2)
        frames = [np.full(SHAPE, value, np.uint8) for value in (40, 200)]
        animals = estimator.estimate_animals(frames)
        assert np.array_equal(estimator.estimate(frames), animals[:, 0])
        assert set(estimator.last_timings) == {"preprocess", "inference", "decode"}
        # No identity classes, no ensemble, one stage: the protocol's defaults.
        assert estimator.last_identity_confidence is None and estimator.last_members is None
        assert estimator.last_frames == () and not estimator.two_stage
        assert estimator.last_stage_timings == {}
        estimator.refresh()  # nothing waits: nothing runs, nothing changes
        ensemble = EnsembleEstimator(description, [estimator, estimator], [np.arange(6)] * 2)
        together = ensemble.estimate(frames)
        assert ensemble.last_members is not None and len(ensemble.last_frames) == 2
        assert np.allclose(together, animals[:, 0], equal_nan=True)  # two equal models
        ensemble.refresh()  # each member's own refresh, without asking what it holds
    finally:
        backend.close()


def test_the_decoder_is_looked_up_when_the_estimator_is_built_never_per_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each estimate calls the decoder the estimator holds; the registry is not asked again."""
    from deeplabstream.pose import model as pose_model

    description = load_model(None)
    backend = open_backend(description, "onnxruntime", "cpu", 1)
    try:
        estimator = open_estimator(description, backend, SHAPE)
        assert estimator.decoder is pose_model.decoder_of(description)
        frames = [np.full(SHAPE, 120, np.uint8)]
        before = estimator.estimate_animals(frames)

        def asked(name: str) -> None:
            raise AssertionError(f"the decoders' registry was asked for {name!r} per frame")

        monkeypatch.setattr(pose_model.DECODERS, "get", asked)
        after = estimator.estimate_animals(frames)  # the same estimate, the registry untouched
        assert np.array_equal(before, after, equal_nan=True) and estimator.animals == 1
    finally:
        backend.close()
