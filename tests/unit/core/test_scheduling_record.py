"""What a loop process asks of the OS (priority, cores, timers) is recorded, never silently off."""

from __future__ import annotations

import atexit
import sys

import pytest

from deeplabstream.core import timing
from deeplabstream.core.priority import can_pin, loop_priority_support, plan_priorities
from deeplabstream.transport.ring import SHARED_MEMORY_NAME_MAX, new_ring_name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timer slack is Linux's")
def test_precise_timers_set_the_timer_slack_on_linux() -> None:
    applied = timing.precise_timers()
    assert applied == {"method": "timer slack", "asked": "1 us", "applied": True, "reason": ""}


class _MockWinmm:
    """Stands in for Windows' winmm.dll (no Windows here): records the calls it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def timeBeginPeriod(self, period: int) -> int:  # noqa: N802 - Windows' own name
        self.calls.append(("begin", period))
        return 0

    def timeEndPeriod(self, period: int) -> int:  # noqa: N802 - Windows' own name
        self.calls.append(("end", period))
        return 0


def test_windows_timer_resolution_is_asked_and_given_back_with_a_mock_winmm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    winmm = _MockWinmm()
    registered = []
    monkeypatch.setattr(timing.ctypes, "WinDLL", lambda name: winmm, raising=False)
    monkeypatch.setattr(atexit, "register", lambda f, *a: registered.append((f, a)))
    applied = timing.precise_timers()
    assert applied == {"method": "timeBeginPeriod", "asked": "1 ms", "applied": True, "reason": ""}
    assert winmm.calls == [("begin", 1)]
    for function, arguments in registered:  # what the process's exit does
        function(*arguments)
    assert winmm.calls == [("begin", 1), ("end", 1)]


def test_without_prctl_or_winmm_nothing_is_set_and_that_is_recorded_with_a_mock_libc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """macOS's path (no macOS here): a C library without ``prctl`` and no ``WinDLL``."""
    monkeypatch.delattr(timing.ctypes, "WinDLL", raising=False)
    monkeypatch.setattr(timing.ctypes, "CDLL", lambda *a, **k: object())  # has no prctl
    applied = timing.precise_timers()
    assert (applied["method"], applied["applied"]) == ("none", False)
    assert "no timer slack or resolution" in applied["reason"]


def test_the_plan_records_what_the_loop_asks_for_and_what_this_platform_gives() -> None:
    described = plan_priorities("auto", 1, (0, 1, 2, 3)).describe()
    assert described["loop_priority"] == loop_priority_support()
    assert described["loop_priority"]["asked"] == "above normal"
    assert described["pinning"] == ("available" if can_pin() else described["pinning"])
    assert plan_priorities("auto", 1, (0, 1)).for_role("inference").above_normal
    assert not plan_priorities("auto", 1, (0, 1)).for_role("recorder").above_normal


@pytest.mark.parametrize(
    "camera", ["arena", "arena_top_view_high_speed_left", "Käfig 3 / links (oben)", "x" * 200]
)
def test_ring_names_fit_the_shortest_platform_limit(camera: str) -> None:
    names = {new_ring_name(camera) for _ in range(50)}
    assert len(names) == 50  # unique
    for name in names:
        assert len(name) <= SHARED_MEMORY_NAME_MAX == 30  # macOS: 31 with the leading "/"
        assert name.isascii() and name.replace("_", "").isalnum()
