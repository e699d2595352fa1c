"""Clicks made while a part starts or stops: they wait for it, then run, or say why they cannot.

Design: docs/gui.md, "The buttons".
"""

from __future__ import annotations

from dataclasses import dataclass

from deeplabstream.app.gui.session import BUTTON_LABELS, Part, SessionController


@dataclass(frozen=True)
class QueuedClick:
    """One click waiting: which button, whether it starts or stops, what it waits for."""

    part: Part
    start: bool
    waited: str  # what was starting or stopping when it was clicked ("starting recording")

    def words(self) -> str:
        """Return the button's words as clicked: ``Start Experiment``."""
        return f"{'Start' if self.start else 'Stop'} {BUTTON_LABELS[self.part]}"


class ClickQueue:
    """The clicks made while the window's controller starts or stops a part, in click order."""

    def __init__(self, controller: SessionController) -> None:
        self.controller = controller
        self.clicks: list[QueuedClick] = []

    def holds(self, part: Part) -> bool:
        """Whether a click on ``part``'s button waits."""
        return any(click.part is part for click in self.clicks)

    def will_run(self) -> frozenset[Part]:
        """Return the parts that queued clicks start."""
        return frozenset(click.part for click in self.clicks if click.start)

    def can_queue(self, part: Part) -> bool:
        """Whether a click on ``part``'s button now waits, and could be honoured after."""
        controller = self.controller
        waited = controller.waits_for(part)
        if waited is None or (part is not Part.STREAM and waited.endswith(f" {part.value}")):
            return False
        return controller.why_not(part, waiting=True, will_run=self.will_run()) is None

    def click(self, part: Part) -> str:
        """Queue a click on ``part``'s button (a second click takes it back); return what to say."""
        queued = next((click for click in self.clicks if click.part is part), None)
        if queued is not None:
            self.clicks.remove(queued)
            return f"{queued.words()}: no longer queued"
        controller = self.controller
        waited = controller.waits_for(part) or "the part in progress"
        click = QueuedClick(part, not self._running(part), waited)
        said = f"{click.words()}: queued, it runs once {done_words(waited)}"
        if part is Part.STREAM and not click.start:  # nothing queued before a stop will run
            dropped = [queued.words() for queued in self.clicks]
            self.clicks.clear()
            if dropped:
                said += f" ({', '.join(dropped)} no longer queued)"
        self.clicks.append(click)
        return said

    def next(self) -> tuple[QueuedClick, str | None] | None:
        """Take the first click whose wait is over; return it and why it cannot run (None: it can).

        None when no click is ready; a click whose part is already as asked is dropped.
        """
        controller = self.controller
        while self.clicks:
            head = self.clicks[0]
            if controller.waits_for(head.part) is not None:
                return None
            self.clicks.pop(0)
            if self._running(head.part) == head.start:
                continue  # already as it asked
            return head, controller.why_not(head.part)
        return None

    def text(self) -> str:
        """Return the queued clicks for the line beside the buttons ("" when none)."""
        return ", ".join(click.words() for click in self.clicks)

    def clear(self) -> None:
        """Forget every queued click (the window closes)."""
        self.clicks.clear()

    def _running(self, part: Part) -> bool:
        """Whether ``part`` runs, or is loading (analysis): its button would stop it."""
        controller = self.controller
        return controller.running(part) or (
            part is Part.ANALYSIS and controller.loading is not None
        )


def done_words(waited: str) -> str:
    """Say when a wait is over: "starting recording" -> "recording has started"."""
    verb, _, what = waited.partition(" ")
    what = what.split(":")[0]  # "stopping stream: ending the pose worker's start"
    if verb == "starting" and what:
        return f"{what} has started"
    if verb == "stopping" and what:
        return f"{what} has stopped"
    return f"{waited} is done"
