"""Lab Streaming Layer outlets: every pose and event reaches an inlet in another process.

The inlet runs in a spawned process and finds the streams by name over loopback, as LabRecorder
would on the rig; it sends what it received back through a queue.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from deeplabstream.outputs.lsl import (
    EVENT_STREAM_NAME,
    EventOutlet,
    PoseOutlet,
    marker_text,
    pose_channel_labels,
    pose_source_id,
    pose_stream_name,
)
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT
from tests.support.processes import only_session

pylsl = pytest.importorskip("pylsl")  # outputs.lsl imports it only when an outlet opens

KEYPOINTS = ("nose", "left_ear", "right_ear", "tail_base", "left_paw", "right_paw")
RESOLVE_S = 30.0
SETTLE_S = 1.5  # no more samples for this long after the source ended: everything arrived


def _receive(streams: dict[str, str], ready: Any, results: Any, stop: Any) -> None:
    """Inlet process: resolve ``streams`` (name: XPath query), connect, say so, pull until told."""
    inlets = {}
    deadline = time.monotonic() + RESOLVE_S
    # A continuous resolver keeps asking (as LabRecorder does): a stream is found within a few
    # milliseconds of appearing, however slowly the discovery answers come back.
    resolver = pylsl.ContinuousResolver(
        pred=" or ".join(f"({query})" for query in streams.values())
    )
    while len(inlets) < len(streams) and time.monotonic() < deadline:
        for found in resolver.results():
            if found.name() not in inlets:
                inlet = pylsl.StreamInlet(found, max_buflen=360)
                inlet.open_stream(timeout=10)
                inlets[found.name()] = inlet
        time.sleep(0.005)
    ready.set()
    received: dict[str, list[tuple[float, list[Any]]]] = {name: [] for name in inlets}
    info: dict[str, str] = {name: inlet.info(timeout=5).as_xml() for name, inlet in inlets.items()}
    quiet_since = time.monotonic()
    while not (stop.is_set() and time.monotonic() - quiet_since > SETTLE_S):
        got = False
        for name, inlet in inlets.items():
            while True:
                # recover (the default): a closed outlet's buffered samples still come
                sample, stamp = inlet.pull_sample(timeout=0.0)
                if sample is None:
                    break
                received[name].append((stamp, list(sample)))
                got = True
        if got:
            quiet_since = time.monotonic()
        else:
            time.sleep(0.002)
    results.put((received, info))


class _Inlet:
    """An inlet process over ``streams`` (name: XPath query), in LSL session ``lsl_config``'s.

    Other tests' sessions may stream at the same time under the same names (the event stream's is
    fixed): a query on the source id, or a session of its own (LSL's ``SessionID``, which a lab
    sets to keep two rigs on one network apart), finds this test's streams only.
    """

    def __init__(self, streams: dict[str, str], lsl_config: Path | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        self.ready, self.stop = context.Event(), context.Event()
        self.results = context.Queue()
        self.process = context.Process(
            target=_receive, args=(streams, self.ready, self.results, self.stop)
        )
        with _lsl_session(lsl_config):  # the child takes its environment when it starts
            self.process.start()

    def collect(self) -> tuple[dict[str, list[tuple[float, list[Any]]]], dict[str, str]]:
        self.stop.set()
        received, info = self.results.get(timeout=60)
        self.process.join(10)
        return received, info


@contextlib.contextmanager
def _lsl_session(lsl_config: Path | None) -> Iterator[None]:
    """Set ``LSLAPICFG`` to ``lsl_config`` for the processes started inside (None: leave it)."""
    if lsl_config is None:
        yield
        return
    before = os.environ.get("LSLAPICFG")
    os.environ["LSLAPICFG"] = str(lsl_config)
    try:
        yield
    finally:
        if before is None:
            del os.environ["LSLAPICFG"]
        else:
            os.environ["LSLAPICFG"] = before


def _own_lsl_session(tmp_path: Path) -> Path:
    """Write an LSL configuration whose session only this test's processes share."""
    path = tmp_path / "lsl_api.cfg"
    path.write_text(f"[lab]\nSessionID = deeplabstream-test-{os.getpid()}-{time.monotonic_ns()}\n")
    return path


def test_every_pose_and_marker_reaches_an_inlet_in_another_process() -> None:
    camera = f"cam{os.getpid()}"  # unique on the machine: other runs may stream at once
    pose_name = pose_stream_name(camera)
    poses = PoseOutlet(camera, KEYPOINTS, source_id=pose_source_id(camera))
    events_id = f"test-events-{os.getpid()}"
    events = EventOutlet(source_id=events_id)
    inlet = _Inlet(
        {
            pose_name: f"name='{pose_name}'",
            EVENT_STREAM_NAME: f"name='{EVENT_STREAM_NAME}' and source_id='{events_id}'",
        }
    )
    assert inlet.ready.wait(RESOLVE_S + 15)
    deadline = time.monotonic() + 10
    while not (poses.consumers and events.consumers) and time.monotonic() < deadline:
        time.sleep(0.01)
    rng = np.random.default_rng(0)
    sent = rng.uniform(0, 640, (500, len(KEYPOINTS), 3)).astype(np.float32)
    host_times = [time.perf_counter_ns() / 1e9 + i * 1e-3 for i in range(len(sent))]
    texts = [marker_text("trigger", "nose_in_left", "true", i, camera, i) for i in range(50)]
    for pose, host_s in zip(sent, host_times, strict=True):
        poses.push(pose, host_s)
    for index, text in enumerate(texts):
        events.push(text, host_times[index])
    poses.close()
    events.close()
    received, info = inlet.collect()

    assert poses.error is None and events.error is None
    got = received[pose_name]
    assert len(got) == len(sent)  # nothing lost
    values = np.array([sample for _, sample in got], np.float32)
    assert np.array_equal(values, sent.reshape(len(sent), -1))
    stamps = np.array([stamp for stamp, _ in got])
    expected = np.array([poses.clock.to_lsl(h) for h in host_times])
    assert np.abs(stamps - expected).max() < 1e-6  # LSL keeps the time given (no jitter fix)
    assert abs(poses.clock.offset_s - 0.0) < 1e-3 or os.name != "posix"
    markers = received[EVENT_STREAM_NAME]
    assert [sample[0] for _, sample in markers] == texts
    assert np.abs(np.array([s for s, _ in markers]) - expected[: len(texts)]).max() < 1e-6
    xml = info[pose_name]
    assert "<type>MoCap</type>" in xml and "<channel_format>float32</channel_format>" in xml
    assert all(f"<label>{label}</label>" in xml for label in pose_channel_labels(KEYPOINTS))
    assert "<type>Markers</type>" in info[EVENT_STREAM_NAME]


@pytest.mark.slow
def test_a_session_with_lsl_on_streams_every_analysed_pose_and_every_event(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    camera = f"lsl{os.getpid()}"
    settings = write_settings(
        tmp_path,
        f"[Camera {camera}]\nSOURCE = synthetic\nFRAMERATE = 30\nMOTION = waypoints\n"
        "WAYPOINTS = 0: 320 240; 30: 320 240; 90: 150 240; 150: 150 240\n"
        "[Experiment]\nNAME = ExampleExperiment\n"
        "[Device stimulus_box]\nTYPE = log\n"
        "[Output]\nLSL = on\nLSL_WAIT = 60\n",  # as a lab does: LabRecorder gets every pose
    )
    names = (pose_stream_name(camera), EVENT_STREAM_NAME)
    lsl_config = _own_lsl_session(tmp_path)  # another test's session may stream its events too
    inlet = _Inlet({name: f"name='{name}'" for name in names}, lsl_config)
    command = [
        sys.executable,
        str(PROJECT_ROOT / "DeepLabStream.py"),
        "--settings",
        str(settings),
        "--headless",
        "--pose-enabled",
        "--experiment-enabled",
        "--frames",
        "150",
        "--output-dir",
        str(tmp_path / "out"),
    ]
    with _lsl_session(lsl_config):
        result = subprocess.run(
            command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180
        )
    received, _ = inlet.collect()
    assert result.returncode == 0, result.stderr[-3000:]
    session = only_session(tmp_path / "out")

    timing = pd.read_csv(session / f"{camera}.pose_timing.csv")
    poses = received[pose_stream_name(camera)]
    assert len(poses) == len(timing) > 0  # every analysed frame's pose
    stamps = np.array([stamp for stamp, _ in poses])
    # On Linux LSL's clock is the host clock: a pose's stamp is its frame's arrival time.
    assert np.abs(stamps - timing["host_timestamp"].to_numpy()).max() < 1e-6
    table = pd.read_csv(session / f"{camera}.pose.csv", header=[0, 1, 2], index_col=0)
    analysed = table.loc[timing["frame_index"]].to_numpy(np.float32)
    values = np.array([sample for _, sample in poses], np.float32)
    assert np.allclose(values, analysed, atol=1e-3, equal_nan=True)

    events = pd.read_csv(session / "events.csv", keep_default_na=False)
    markers = received[EVENT_STREAM_NAME]
    assert len(markers) == len(events) > 0  # every event of events.csv
    assert {"start", "trigger", "action"} <= set(events["kind"])
    texts = [
        marker_text(
            row.kind,
            row.name,
            row.detail,
            int(row.trial) if row.trial != "" else None,
            row.camera,
            int(row.frame_index) if row.frame_index != "" else None,
        )
        for row in events.itertuples()
    ]
    assert [sample[0] for _, sample in markers] == texts
    for (stamp, _), row in zip(markers, events.itertuples(), strict=True):
        when = row.written if row.kind == "action" and row.written != "" else row.host_timestamp
        if when != "":
            assert stamp == pytest.approx(float(when), abs=1e-5)  # events.csv keeps 6 decimals


def test_lsl_is_off_by_default_and_off_opens_nothing(tmp_path: Path) -> None:
    from deeplabstream.live.processes.analysis.job import PoseJob
    from deeplabstream.outputs.lsl import LslOutlets
    from deeplabstream.settings import load_settings
    from deeplabstream.settings.outputs import chosen_outputs
    from deeplabstream.settings.sections import OutputSettings

    assert OutputSettings().lsl == "off"
    assert PoseJob.__dataclass_fields__["outputs"].default == ()  # the pose files only
    settings = load_settings(write_settings(tmp_path, "[Camera a]\nSOURCE = synthetic\n"))
    assert [chosen.name for chosen in chosen_outputs(settings)] == ["pose"]
    outlets = LslOutlets.off()
    assert outlets.poses == {} and outlets.events is None and outlets.error is None


def test_an_outlet_that_cannot_open_is_reported_and_the_others_go_on(monkeypatch) -> None:
    from deeplabstream.outputs.lsl import LslOutlets

    real = pylsl.StreamOutlet

    def refuse_poses(info: Any, *args: Any, **kwargs: Any) -> Any:
        if info.type() == "MoCap":
            raise RuntimeError("could not create stream outlet.")
        return real(info, *args, **kwargs)

    monkeypatch.setattr(pylsl, "StreamOutlet", refuse_poses)
    outlets = LslOutlets.open({f"broken{os.getpid()}": KEYPOINTS})
    try:
        assert outlets.poses == {} and outlets.events is not None
        assert outlets.error is not None
        assert "could not be opened" in outlets.error and "goes on without LSL" in outlets.error
        outlets.events.push("start test", None)  # the marker stream still works
        assert outlets.events.samples == 1 and outlets.events.error is None
    finally:
        outlets.close()
