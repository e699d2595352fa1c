"""Things made once per test run: made by one process, read by all, a failure shared."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import made_once as made_once_module
from tests.support.made_once import copied_for_the_test, made_once


class _Factory:
    """The one part of pytest's TempPathFactory that made_once reads, over a folder of ours."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def getbasetemp(self) -> Path:
        return self.base


def _make_counting(calls: Path) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        with calls.open("a") as file:
            file.write("made\n")
        (folder / "reference.txt").write_text("the reference")

    return make


def _ask(base: str, calls: str, answers: str) -> None:
    made = made_once(_Factory(Path(base)), "reference", _make_counting(Path(calls)))
    with open(answers, "a") as file:
        file.write((made / "reference.txt").read_text() + "\n")


def test_four_processes_asking_at_once_get_one_making(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    calls, answers = tmp_path / "calls", tmp_path / "answers"
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_ask, args=(str(tmp_path), str(calls), str(answers)))
        for _ in range(4)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(600)
    assert [child.exitcode for child in children] == [0, 0, 0, 0]
    assert calls.read_text().splitlines() == ["made"]
    assert answers.read_text().splitlines() == ["the reference"] * 4


def test_a_copy_for_the_test_leaves_the_made_folder_as_it_was(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    made = made_once(_Factory(tmp_path), "reference", _make_counting(tmp_path / "calls"))
    copy = copied_for_the_test(made, tmp_path / "test")
    (copy / "reference.txt").write_text("tampered")
    assert (made / "reference.txt").read_text() == "the reference"


def test_a_failed_making_fails_the_others_instead_of_keeping_them_waiting(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)

    def broken(folder: Path) -> None:
        raise RuntimeError("the recorder would not start")

    with pytest.raises(RuntimeError):
        made_once(_Factory(tmp_path), "reference", broken)
    with pytest.raises(pytest.fail.Exception, match="the recorder would not start"):
        made_once(_Factory(tmp_path), "reference", _make_counting(tmp_path / "calls"))
    assert not (tmp_path / "calls").exists()


def test_a_maker_that_died_holding_the_lock_is_replaced(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.setattr(made_once_module, "POLL_S", 0.01)
    child = multiprocessing.get_context("spawn").Process(target=int)
    child.start()
    child.join()
    root = tmp_path / "made-once"
    root.mkdir()
    (root / "reference.lock").write_text(str(child.pid))  # its pid is gone now
    made = made_once(_Factory(tmp_path), "reference", _make_counting(tmp_path / "calls"))
    assert (made / "reference.txt").read_text() == "the reference"
