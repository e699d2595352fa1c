"""Map an experiment's keypoints onto the model's, from the Rig tab.

Design: docs/gui.md, "Mapping the experiment's keypoints onto the model's".
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from deeplabstream.app.gui.background_thread import BackgroundThread
from deeplabstream.app.gui.button_row import named_button
from deeplabstream.app.gui.rig_check import editable_config, experiment_name_for
from deeplabstream.core.errors import ModelError
from deeplabstream.experiments.config.edit import ConfigEditError, save_keypoint_mapping
from deeplabstream.live.session.keypoints import (
    KeypointMismatch,
    keypoint_mismatches,
    model_label,
)
from deeplabstream.pose.loading import model_animals, model_keypoints
from deeplabstream.settings.effective import resolve_cameras
from deeplabstream.settings.sections import Settings

NO_CHOICE = "(leave as it is)"
KEYPOINT_PROBLEM = "is not a keypoint of"  # in live.session.keypoints.mismatch_problem's sentences
SIMILARITY = 0.75  # a spelling this close (difflib ratio) to a model's keypoint is suggested
# How alike two names are, best first: the same word spelt alike (tail_base, TailBase), a word of
# the same meaning (nose, snout), a part that stands in for another (a model with a head and no
# nose), else their spellings' similarity (difflib ratio, below 1).
SAME_SPELLING = 1.0
SAME_MEANING = 0.95
NEAR_MEANING = 0.8

# Words for the same body part; each group's first word is its canonical name. Names are
# compared lower-case without separators: "tip of the head" is "tipofthehead".
_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("nose", "snout", "nosetip", "tipofnose", "rostrum", "headtip", "tipofhead", "tipofthehead"),
    ("tailbase", "tailroot", "basetail", "baseoftail", "tailstart", "tail1", "tail0"),
    ("tailtip", "tailend", "endoftail"),
    ("tailmid", "tailmiddle", "midtail", "tailcentre", "tailcenter"),
    (
        "bodycenter", "bodycentre", "centroid", "center", "centre", "midbody", "body", "spine",
        "midspine", "spinemid", "thorax", "torso", "mid",
    ),
    ("head", "headcenter", "headcentre", "crown"),
    ("ear", "pinna", "earbase"),
    ("forepaw", "frontpaw", "hand", "forelimb", "frontfoot", "forefoot"),
    ("hindpaw", "backpaw", "foot", "hindlimb", "rearpaw", "hindfoot"),
)  # fmt: skip
_CANONICAL = {word: group[0] for group in _SYNONYMS for word in group}
# Parts that are not the same but stand in for each other when the model lacks one: a region
# that watched the nose watches the head of a model that has no nose (a fly's), and back.
_NEAR: frozenset[frozenset[str]] = frozenset({frozenset({"nose", "head"})})
_SIDES = {"left": "left", "l": "left", "right": "right", "r": "right"}


# --------------------------------------------------------------------------------------------------
# Suggestions (no Qt)
# --------------------------------------------------------------------------------------------------


def _words(name: str) -> list[str]:
    """Split ``leftEar``, ``left_ear``, ``Left-Ear 2`` into lower-case words."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def normalised(name: str) -> tuple[str, str]:
    """Return (side, body part) of a keypoint name: ``l_ear``, ``LeftEar`` give ("left", "ear")."""
    side = ""
    rest = []
    for word in _words(name):
        if word in _SIDES and not side:
            side = _SIDES[word]
        else:
            rest.append(word)
    part = "".join(rest)
    for word in ("left", "right"):  # a side run into the word: leftear, earleft
        if not side and part != word and (part.startswith(word) or part.endswith(word)):
            side, part = word, part.removeprefix(word).removesuffix(word)
    return side, part


def canonical(name: str) -> tuple[str, str]:
    """Return (side, body part) of a keypoint name, synonyms too: ``snout`` gives ("", "nose")."""
    side, part = normalised(name)
    return side, _CANONICAL.get(part, part)


def likeness(wanted: str, candidate: str) -> float:
    """How well ``candidate`` stands for ``wanted`` (0-1; see :data:`SAME_SPELLING` and after)."""
    (side, part), (other_side, other_part) = normalised(wanted), normalised(candidate)
    if side != other_side:
        return 0.0  # a left ear is never a right ear
    if part == other_part:
        return SAME_SPELLING
    meaning, other_meaning = _CANONICAL.get(part, part), _CANONICAL.get(other_part, other_part)
    if meaning == other_meaning:
        return SAME_MEANING
    if frozenset({meaning, other_meaning}) in _NEAR:
        return NEAR_MEANING
    spelling = difflib.SequenceMatcher(None, meaning, other_meaning).ratio()
    return min(spelling, SAME_MEANING - 0.01)  # never above a name of the same meaning


def suggest_mapping(wanted: Sequence[str], available: Sequence[str]) -> dict[str, str | None]:
    """Return, for each name in ``wanted``, the likeliest of ``available`` (None: no good one).

    The same name, then the best :func:`likeness`; each of ``available`` is taken at most once.
    """
    found: dict[str, str | None] = {name: None for name in wanted}
    taken: set[str] = set()
    for name in wanted:
        if name in available:
            found[name] = name
            taken.add(name)
    pairs = sorted(
        (
            (-likeness(name, candidate), index, name, candidate)
            for index, name in enumerate(wanted)
            if found[name] is None
            for candidate in available
        ),
    )
    for negative, _, name, candidate in pairs:
        if -negative < SIMILARITY:
            break
        if found[name] is None and candidate not in taken:
            found[name] = candidate
            taken.add(candidate)
    return found


# --------------------------------------------------------------------------------------------------
# What the rig's models have (computed off the GUI thread)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RigKeypoints:
    """The keypoints of the rig's models and what the experiment reads that they lack."""

    by_camera: dict[str | None, tuple[str, ...]] = field(default_factory=dict)
    mismatches: tuple[KeypointMismatch, ...] = ()
    config_file: Path | None = None
    experiment: str = ""
    devices: tuple[str, ...] = ()
    animals: dict[str | None, int] = field(default_factory=dict)
    """How many animals each camera's model reports (``[Pose] MAX_ANIMALS`` for a multi-animal
    model, :func:`pose.loading.model_animals`); a rule of a region then chooses among them."""


def rig_keypoints(settings: Settings, load_experiment_code: bool = True) -> RigKeypoints:
    """Return the keypoints of each camera's model and the experiment's mismatches (cached)."""
    plan = resolve_cameras(settings)  # each camera's model (settings/effective.py)
    by_camera: dict[str | None, tuple[str, ...]] = {}
    animals: dict[str | None, int] = {}
    for camera, path in plan.models_by_camera().items():
        try:
            by_camera[camera] = model_keypoints(path)
        except ModelError:  # unreadable files too (model_keypoints raises them as one)
            continue  # the rig's problems name it
        try:
            animals[camera] = model_animals(path, settings.pose.max_animals)
        except (ModelError, OSError, ValueError):  # its keypoints are still offered
            continue  # the rig's problems name it
    name = settings.experiment.name
    rig = RigKeypoints(by_camera, devices=tuple(settings.devices), animals=animals)
    if not settings.experiment_chosen or not load_experiment_code:  # the lab's code: not yet
        return rig
    try:
        planned = plan.experiment_plan()
        experiment = planned.experiment()
    except Exception:  # a broken experiment is the rig check's to say
        return dataclasses.replace(rig, experiment=name)
    mismatches = tuple(keypoint_mismatches(plan, experiment))
    config_file = planned.file if planned.kind == "config" else None
    return dataclasses.replace(rig, mismatches=mismatches, config_file=config_file, experiment=name)


def _forget(reports: list[_Report], report: _Report) -> None:
    if report in reports:
        reports.remove(report)


class _Report(BackgroundThread):
    """Compute :func:`rig_keypoints` off the GUI thread (a first look may read a model file)."""

    done = pyqtSignal(int, object)  # generation, RigKeypoints

    def __init__(self, generation: int, settings: Settings, load_experiment_code: bool) -> None:
        super().__init__()
        self._generation, self._settings = generation, settings
        self._load = load_experiment_code

    def run(self) -> None:  # QThread calls this on the new thread
        try:
            report = rig_keypoints(self._settings, self._load)
        except Exception:  # a check that crashes must not take the window with it
            report = RigKeypoints()
        self.done.emit(self._generation, report)


# --------------------------------------------------------------------------------------------------
# The box in the Rig tab
# --------------------------------------------------------------------------------------------------


class KeypointMapBox(QGroupBox):
    """Offers the mapping of the experiment's keypoints onto the model's; saves it.

    ``rig``: the Rig tab, whose ``checked`` signal starts a look at its ``settings``.
    """

    report_ready = pyqtSignal(object)
    """A look finished: the :class:`RigKeypoints` (also in :attr:`report`)."""
    mapped = pyqtSignal(Path, object)
    """A mapping (old name -> new) was saved into this config file."""

    def __init__(self, rig: Any) -> None:
        super().__init__("Keypoints of the experiment and the model")
        self.setObjectName("keypoint_map")
        self.rig = rig
        self.report = RigKeypoints()
        self.choices: dict[str, QComboBox] = {}
        self._generation = 0
        self._reports: list[_Report] = []
        self.intro = QLabel("")
        self.intro.setObjectName("keypoint_map_intro")
        self.intro.setWordWrap(True)
        self._rows = QWidget()
        self._form = QFormLayout(self._rows)
        self._form.setContentsMargins(0, 0, 0, 0)
        self.save_button = named_button("Save mapping", "keypoint_map_save", self._save_clicked)
        self.status = QLabel("")
        self.status.setObjectName("keypoint_map_status")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self._rows)
        layout.addWidget(self.save_button)
        layout.addWidget(self.status)
        self.hide()
        rig.checked.connect(self.look)

    # ---------------------------------------------------------------------------- looking

    def look(self) -> None:
        """Find, off the GUI thread, what the experiment reads that the models lack."""
        settings = self.rig.settings
        self._generation += 1
        if settings is None:
            return  # the settings cannot be read: the rig's problems say why
        report = _Report(self._generation, settings, self.rig.experiment_allowed())
        report.done.connect(self._looked)
        report.finished.connect(lambda r=report: _forget(self._reports, r))
        self._reports.append(report)
        report.start()

    def wait(self) -> None:
        """Block until every look in flight is done and shown (tests, and before a start)."""
        for report in list(self._reports):
            report.wait()
        from PyQt5.QtWidgets import QApplication

        QApplication.processEvents()

    def _looked(self, generation: int, report: RigKeypoints) -> None:
        if generation != self._generation:
            return  # an older settings text's answer
        self.report = report
        self._show(report)
        self.report_ready.emit(report)

    def _show(self, report: RigKeypoints) -> None:
        while self._form.rowCount():
            self._form.removeRow(0)
        self.choices = {}
        if not report.mismatches:
            self.hide()
            return
        self.show()
        models = ", ".join(dict.fromkeys(model_label(m.model) for m in report.mismatches))
        if report.config_file is None:
            self.intro.setText(
                f"The experiment {report.experiment} reads keypoints {models} does not have: "
                f"{', '.join(dict.fromkeys(m.keypoint for m in report.mismatches))}. It is "
                "written in Python and names them in its code: rename them there, or choose a "
                "model that has them."
            )
            self.save_button.hide()
            return
        self.intro.setText(
            f"The experiment reads keypoints that {models} does not have. Choose the model's "
            "keypoint for each, then Save mapping: the experiment's config is changed to read it."
        )
        self.save_button.show()
        wanted = self._wanted(report)
        suggested: dict[str, str | None] = {}
        for available in dict.fromkeys(wanted.values()):  # each model's rows together:
            rows = [keypoint for keypoint, names in wanted.items() if names == available]
            suggested.update(suggest_mapping(rows, available))  # no keypoint offered twice
        for keypoint, available in wanted.items():
            box = QComboBox()
            box.setObjectName(f"keypoint_map_{keypoint}")
            box.addItem(NO_CHOICE, None)
            for name in available:
                box.addItem(name, name)
            box.setCurrentIndex(max(0, box.findData(suggested[keypoint])))
            self._form.addRow(QLabel(f"{keypoint} ->"), box)
            self.choices[keypoint] = box

    @staticmethod
    def _wanted(report: RigKeypoints) -> dict[str, tuple[str, ...]]:
        """Each keypoint to map, with the keypoints of the (first) model that lacks it."""
        wanted: dict[str, tuple[str, ...]] = {}
        for mismatch in report.mismatches:
            wanted.setdefault(mismatch.keypoint, mismatch.model_keypoints)
        return wanted

    # ---------------------------------------------------------------------------- saving

    def _save_clicked(self) -> None:
        self.save()  # the outcome is in the status line

    def mapping(self) -> dict[str, str]:
        """Return the chosen mapping (keypoints left as they are are not in it)."""
        return {name: box.currentData() for name, box in self.choices.items() if box.currentData()}

    def save(self) -> bool:
        """Write the chosen mapping into the experiment's config; the rig is checked again."""
        config, mapping = self.report.config_file, self.mapping()
        if config is None or not mapping:
            self.status.setText("Choose a keypoint of the model for at least one row first.")
            return False
        try:
            target = editable_config(config, self.rig.settings_file)
            changes = save_keypoint_mapping(target, mapping)
        except (ConfigEditError, OSError) as error:  # OSError: the copy or the write failed
            self.status.setText(f"Not saved: {error}")
            return False
        if target != config:  # a shipped config: the settings now name the copy
            self.rig.set_experiment(experiment_name_for(target, self.rig.settings_file))
        copied = f" (a copy of {config.name})" if target != config else ""
        self.status.setText(f"Saved into {target}{copied}:\n" + "\n".join(changes))
        self.rig.check_now()
        self.mapped.emit(target, mapping)
        return True


# --------------------------------------------------------------------------------------------------
# Wiring into the window
# --------------------------------------------------------------------------------------------------


def connect_keypoints(window: Any) -> None:
    """Connect the Rig tab's keypoint box to the Regions tab and the error banner of ``window``."""
    rig, editor = window.rig_panel, window.region_editor
    box: KeypointMapBox = rig.keypoint_map

    def looked(report: RigKeypoints) -> None:
        keypoints = {camera: list(names) for camera, names in report.by_camera.items()}
        editor.use_rig(keypoints, list(report.devices), dict(report.animals))
        banner = getattr(window, "banner", None)
        text = getattr(banner, "label", None)
        fixed = not report.mismatches and text is not None and KEYPOINT_PROBLEM in text.text()
        if banner is not None and fixed:
            banner.clear()

    def copy_shipped(config: Path) -> Path:
        target = editable_config(config, rig.settings_file)
        if target != config.resolve():
            rig.set_experiment(experiment_name_for(target, rig.settings_file))
        return target

    def mapped(target: Path, mapping: dict[str, str]) -> None:
        # The editor must not write the old names back: it reads the mapped file, or (with
        # unsaved drawings) renames its regions' keypoints the same way.
        if editor.dirty:
            editor.rename_keypoints(target, mapping)
        else:
            editor.load(target, editor.cameras, editor.keypoints)

    box.report_ready.connect(looked)
    box.mapped.connect(mapped)
    editor.before_save = copy_shipped
