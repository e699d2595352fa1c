"""The appearance learner process: samples in through shared memory, models out, restarts, stop."""

from __future__ import annotations

import time

import numpy as np

from deeplabstream.live.processes.analysis.identities import BackgroundLearner
from deeplabstream.pose.tracking.appearance import MIN_SAMPLES_PER_IDENTITY


def _wait_for_model(learner: BackgroundLearner, version: int = 1, timeout_s: float = 60.0):
    """Poll as the keeper does at every frame until a model of ``version`` arrives."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        model = learner.latest()
        if model is not None and model.version >= version:
            return model
        time.sleep(0.05)
    raise AssertionError(f"no model {version} within {timeout_s} s: {learner.figures()}")


def _samples(rng: np.random.Generator, count: int, features: int) -> list[tuple]:
    """Two identities whose features differ in their first value, over ``count`` frames."""
    out = []
    for index in range(count):
        for identity in (0, 1):
            vector = rng.normal(0.0, 0.1, features).astype(np.float32)
            vector[0] += 3.0 * identity
            out.append((vector, identity, index / 30.0))
    return out


def test_the_learner_fits_in_its_process_and_the_keeper_reads_the_model():
    rng = np.random.default_rng(0)
    learner = BackgroundLearner.start(2, 8)
    try:
        assert learner.latest() is None
        for vector, identity, time_s in _samples(rng, 4 * MIN_SAMPLES_PER_IDENTITY, 8):
            learner.add(vector, identity, time_s)
        model = _wait_for_model(learner)
        probe = np.zeros(8, np.float32)
        assert model.probabilities(probe).argmax() == 0
        probe[0] = 3.0
        assert model.probabilities(probe).argmax() == 1
        assert model.accuracy == 1.0
        # Restarting drops the samples and the model; only new samples make the next one.
        learner.restart()
        assert learner.latest() is None
        for vector, identity, time_s in _samples(rng, 4 * MIN_SAMPLES_PER_IDENTITY, 8):
            learner.add(vector, 1 - identity, time_s)  # the labels the other way round
        model = _wait_for_model(learner, version=model.version + 1)
        assert model.probabilities(probe).argmax() == 0
    finally:
        figures = learner.close()
    assert figures["fits"] >= 2 and figures["samples_lost"] == 0
    assert figures["fit_cpu_s"] > 0
    assert not learner._process.is_alive()


def test_a_killed_learner_leaves_the_keeper_its_last_model_and_the_loop_unharmed():
    import os
    import signal

    rng = np.random.default_rng(1)
    learner = BackgroundLearner.start(2, 8)
    try:
        for vector, identity, time_s in _samples(rng, 4 * MIN_SAMPLES_PER_IDENTITY, 8):
            learner.add(vector, identity, time_s)
        model = _wait_for_model(learner)
        os.kill(learner._process.pid, signal.SIGKILL)
        learner._process.join(10)
        # The keeper's side never waits on the learner: samples still go, the model stays.
        for vector, identity, time_s in _samples(rng, 10, 8):
            learner.add(vector, identity, time_s)
        assert learner.latest() is model
    finally:
        figures = learner.close()  # a dead learner: closing still frees the memory
    assert figures["fits"] >= 1


def test_appearance_identity_off_starts_no_learner_and_keeps_motion_identities(tmp_path):
    """``[Pose] APPEARANCE_IDENTITY = off``: no learner process, the keeper on motion alone."""
    from deeplabstream.live.processes.analysis.identities import CameraIdentities
    from deeplabstream.pose.tracking.tracker import IdentityTracker
    from deeplabstream.settings.loader import parse_settings_text

    text = "[Camera arena]\nSOURCE = synthetic\n[Pose]\nAPPEARANCE_IDENTITY = off\n"
    settings = parse_settings_text(text, tmp_path / "s.ini")
    assert settings.pose.appearance_identity == "off"
    identities = CameraIdentities(
        IdentityTracker(2, 3), tmp_path / "arena.identity.csv", ("animal1", "animal2"), 0.1,
        learn=settings.pose.appearance_identity == "on",
    )  # fmt: skip
    assert identities.learner is None and identities.keeper.learner is None
    animals = np.array([[[10.0, 10, 1], [20, 10, 1], [30, 10, 1]],
                        [[300.0, 200, 1], [310, 200, 1], [320, 200, 1]]])  # fmt: skip
    frame = np.zeros((480, 640, 3), np.uint8)
    for index in range(5):
        out = identities.update(index / 30.0, animals + index, frame)
        identities.write(index)
    np.testing.assert_allclose(out[:, :, :2], animals[:, :, :2] + 4)
    figures = identities.close()
    assert figures["learner"] is None and figures["samples"] == 0
    assert figures["identity_step_ms"]["count"] == 5
