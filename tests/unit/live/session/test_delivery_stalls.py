"""The delivery watch's stalls, on ring headers written by hand (stand-ins for CameraBranch).

The full case (a simulated capture process stopped with SIGSTOP) runs in
``tests/faults/test_camera_delivery.py``; here the order of frames after a stall is made on
purpose: the frame the camera held when it stalled comes back first, skipping nothing, and the
camera's skip shows only with the frame after it.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

from deeplabstream.live.session.report.delivery import DeliveryWatch

S = 1_000_000_000


def camera_branch():
    header = {
        "captured": 0, "last_host_ns": 0, "last_frame_index": -1, "camera_gaps": 0,
        "last_gap_first": 0, "last_gap_last": 0, "first_host_ns": 0,
    }  # fmt: skip
    opened = SimpleNamespace(paced=True, nominal_fps=30.0, live=False)
    ring = SimpleNamespace(header=header, stop_requested=False)
    return SimpleNamespace(
        name="arena",
        opened=opened,
        ring=ring,
        ended=False,
        lost_after_ns=None,
        settings=SimpleNamespace(source="synthetic"),
    )


def publish(branch, index: int, host_ns: int) -> None:
    """The camera publishes frame ``index`` at ``host_ns``; a jump is counted as its gap."""
    header = branch.ring.header
    missing = index - header["last_frame_index"] - 1
    if header["captured"] and missing > 0:
        header["camera_gaps"] += missing
        header["last_gap_first"], header["last_gap_last"] = index - missing, index - 1
    if not header["captured"]:
        header["first_host_ns"] = host_ns
    header["captured"] += 1
    header["last_frame_index"], header["last_host_ns"] = index, host_ns


def stalled_camera(watch: DeliveryWatch):
    """A camera that delivered frames 0-67 and then nothing for 2.8 s (said live)."""
    branch = camera_branch()
    start = time.perf_counter_ns() - 5 * S  # frame 67 came 2.8 s ago
    for index in range(68):
        publish(branch, index, start + index * S // 30)
    (said,) = watch.check([branch])
    assert "delivered no frame for" in said.live and "after frame 67" in said.live
    return branch


def test_a_held_frame_back_first_waits_for_the_next_to_name_the_frames_skipped():
    watch = DeliveryWatch(time.perf_counter_ns() - 6 * S)
    branch = stalled_camera(watch)
    assert watch.silent_s("arena") > 1.9
    publish(branch, 68, time.perf_counter_ns())  # the frame in hand when it stopped, late
    assert watch.check([branch]) == []  # not said yet: the skip shows with the next frame
    assert watch.silent_s("arena") is None  # frames are back: no stall on the status line
    publish(branch, 158, time.perf_counter_ns())
    (ended,) = watch.check([branch])
    assert "after frame 67" in ended.warning
    assert "frames 69-157 were not delivered (counted as dropped by the camera)" in ended.warning
    assert ended.replaces is not None and "is stalled" in ended.replaces


def test_frames_that_came_late_without_a_skip_are_said_so_after_the_next_frame():
    watch = DeliveryWatch(time.perf_counter_ns() - 6 * S)
    branch = stalled_camera(watch)
    publish(branch, 68, time.perf_counter_ns())
    assert watch.check([branch]) == []
    publish(branch, 69, time.perf_counter_ns())
    (ended,) = watch.check([branch])
    assert "the frames due meanwhile came late, after it (none was skipped)" in ended.warning


def test_a_held_frame_back_just_before_the_end_is_said_at_the_close():
    watch = DeliveryWatch(time.perf_counter_ns() - 6 * S)
    branch = stalled_camera(watch)
    publish(branch, 68, time.perf_counter_ns())
    assert watch.check([branch]) == []
    (ended,) = watch.close([branch])
    assert "delivered no frame for" in ended.warning and "after frame 67" in ended.warning


def test_a_stall_that_lasts_to_the_stop_is_kept_for_its_whole_length():
    """Issue 71: a camera frozen 22 s to the stop kept the 2.1 s warning said when it began."""
    watch = DeliveryWatch(time.perf_counter_ns() - 30 * S)
    branch = camera_branch()
    start = time.perf_counter_ns() - 25 * S  # frame 89 came 22 s ago
    for index in range(90):
        publish(branch, index, start + index * S // 30)
    (began,) = watch.check([branch])
    (ended,) = watch.close([branch])
    assert ended.replaces == began.warning  # the warning said at its start goes
    assert "delivered no frame for 22." in ended.warning, ended.warning
    assert "after frame 89" in ended.warning and "to the session's stop" in ended.warning
    # 90 frames over the 25 s from its first frame to the stop: not the 30 fps of its frames
    assert 3.0 < watch.delivered_to_stop["arena"] < 3.7
