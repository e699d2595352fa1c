"""Which keypoints an experiment reads, and which of them the pose models of the rig lack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deeplabstream.core.errors import ModelError
from deeplabstream.experiments.triggers.base import keypoints_of
from deeplabstream.pose.loading import model_keypoints
from deeplabstream.settings.effective import CameraPlan


@dataclass(frozen=True)
class KeypointMismatch:
    """A keypoint the experiment reads that a model of the rig does not have.

    ``model`` None: the bundled model; ``model_keypoints``: all of its keypoints, in order.
    """

    keypoint: str
    readers: tuple[str, ...]
    model: Path | None
    model_keypoints: tuple[str, ...]


EVENT_KEYPOINT_READER = "[Experiment] EVENT_KEYPOINT"


def keypoint_uses(experiment: Any) -> list[tuple[str, tuple[str, ...] | None, str]]:
    """Return (reader, cameras read or None for any, keypoint) for every keypoint read by name."""
    uses: list[tuple[str, tuple[str, ...] | None, str]] = []
    for name, trigger in experiment.triggers.items():
        cameras = trigger.cameras_read()
        for keypoint in keypoints_of(trigger):
            uses.append((name, cameras or None, keypoint))
    event_keypoint = getattr(experiment, "event_keypoint", None)
    if event_keypoint:
        uses.append((EVENT_KEYPOINT_READER, None, event_keypoint))
    return uses


def keypoint_mismatches(plan: CameraPlan, experiment: Any) -> list[KeypointMismatch]:
    """Return the keypoints ``experiment`` reads that a model it reads from lacks.

    Unreadable models and undeclared cameras are left out (their own checks name them).
    """
    models = plan.models_by_camera()
    known: dict[Path | None, tuple[str, ...] | None] = {}
    for path in dict.fromkeys(models.values()):
        try:
            known[path] = model_keypoints(path) or None  # no names: nothing to check against
        except ModelError:  # unreadable files too (model_keypoints raises them as one)
            known[path] = None
    readers: dict[tuple[Path | None, str], list[str]] = {}
    for reader, cameras, keypoint in keypoint_uses(experiment):
        paths = [models[c] for c in cameras if c in models] if cameras else list(models.values())
        for path in dict.fromkeys(paths):
            names = known[path]
            if names is not None and keypoint not in names:
                who = readers.setdefault((path, keypoint), [])
                if reader not in who:
                    who.append(reader)
    return [
        KeypointMismatch(keypoint, tuple(who), path, known[path] or ())
        for (path, keypoint), who in readers.items()
    ]


def model_label(path: Path | None) -> str:
    """Return how messages name a model: its path, or "the bundled arena model"."""
    return "the bundled arena model" if path is None else str(path)


def mismatch_problem(mismatch: KeypointMismatch, config_file: Path | None) -> str:
    """Return one sentence: the keypoint, who reads it, the model's keypoints, what to do."""
    triggers = [r for r in mismatch.readers if r != EVENT_KEYPOINT_READER]
    who = []
    if triggers:
        who.append(("trigger " if len(triggers) == 1 else "triggers ") + ", ".join(triggers))
    if len(triggers) < len(mismatch.readers):
        who.append(EVENT_KEYPOINT_READER)
    text = (
        f"keypoint {mismatch.keypoint!r}, read by {' and '.join(who)}, is not a keypoint of "
        f"{model_label(mismatch.model)} (its keypoints: {', '.join(mismatch.model_keypoints)}). "
    )
    if config_file is None:
        return text + (
            "This experiment names its keypoints in its Python code: rename the keypoint there, "
            "or choose a model that has it."
        )
    sections = ", ".join(f"[Trigger {name}]" for name in triggers)
    if len(triggers) < len(mismatch.readers):
        sections = ", ".join(s for s in (sections, "[Experiment] EVENT_KEYPOINT") if s)
    return text + (
        "Map the experiment's keypoints onto the model's (the window's Rig tab: Save mapping), "
        f"or name one of the model's keypoints in {sections} of {config_file}."
    )
