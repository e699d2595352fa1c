"""Rules for several animals: ``ANIMAL = any | each``, per-animal edges, and the ``animal`` column.

Synthetic two-animal observations (one keypoint, ``nose``) walk in and out of a circle; the
expected firings are counted from the walk itself. Also: a lab's kind gets the common
parameters (``CAMERA``, ``MIN_LIKELIHOOD``, ``HOLD_S``/``POLICY``) without declaring them.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deeplabstream.core.plugins import using_settings_folder
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment
from deeplabstream.experiments.config.parse import parse_experiment_config
from deeplabstream.experiments.engine.runtime import ExperimentRuntime
from deeplabstream.experiments.events import EVENT_COLUMNS, EventCsvWriter
from deeplabstream.experiments.observation import Observation, Observations
from deeplabstream.experiments.triggers import Region, make_trigger, parameters_of
from deeplabstream.experiments.triggers.animals import AnyAnimal, EachAnimal
from deeplabstream.experiments.triggers.base import FilteredTrigger
from deeplabstream.experiments.triggers.geometry import Circle
from deeplabstream.experiments.triggers.social import ForAnimal

FPS = 10.0
IN, OUT = (100.0, 100.0), (300.0, 300.0)  # inside / outside the zone "circle 100 100 30"
ZONE = "circle 100 100 30"
Where = tuple[float, float] | None  # None: that animal is not seen in that frame


def frame(index: int, places: Sequence[Where], confidence: Sequence[float] | None = None):
    """One observation of len(places) animals (a single-animal model for one place)."""
    rows = np.array(
        [[[np.nan, np.nan, 0.0]] if p is None else [[p[0], p[1], 0.9]] for p in places], float
    )
    if len(places) == 1:
        return Observation(index / FPS, "cam", index, rows[0], ("nose",))
    return Observation(
        index / FPS, "cam", index, rows[0], ("nose",), animals=rows,
        identity_confidence=None if confidence is None else np.array(confidence, float),
    )  # fmt: skip


def walk(*paths: str) -> list[Observation]:
    """Frames from one string per animal: ``i`` inside, ``o`` outside, ``-`` not seen."""
    where = {"i": IN, "o": OUT, "-": None}
    return [frame(n, [where[p[n]] for p in paths]) for n in range(len(paths[0]))]


def entries(path: str) -> list[int]:
    """The frames where an animal seen outside is seen inside next frame (HOLD_S = 0)."""
    return [n for n in range(1, len(path)) if path[n - 1] == "o" and path[n] == "i"]


def config(animal: str, refractory: float = 0.0, extra: str = "", edge: str = "rising") -> str:
    return textwrap.dedent(f"""
        [Trigger zone]
        KIND = region
        SHAPE = {ZONE}
        MODE = entered
        HOLD_S = 0
        ANIMAL = {animal}
        {extra}
        [Stimulation pulse]
        DEVICE = laser
        COMMAND = pulse
        DURATION = 0.05

        [Rule stimulate]
        WHEN = zone
        EDGE = {edge}
        DO = pulse
        REFRACTORY = {refractory}
    """)


def run(text: str, frames: Iterable[Observation | Observations]) -> tuple[list, pd.DataFrame]:
    """Run a config over ``frames``; return (actions in order, events.csv as a table)."""
    runtime = ExperimentRuntime(parse_experiment_config(text).build())
    buffer = io.StringIO()
    runtime.events.attach(EventCsvWriter(buffer))
    runtime.start()
    actions: list[tuple[float, Action]] = []
    for obs in frames:
        actions += [(obs.time_s, a) for a in runtime.update(obs)]
    runtime.stop()
    runtime.events.close()
    table = pd.read_csv(io.StringIO(buffer.getvalue()), keep_default_na=False, dtype=str)
    return actions, table


def pulse_rows(events: pd.DataFrame) -> pd.DataFrame:
    """The events.csv rows of the pulses."""
    return events[(events["kind"] == "action") & events["detail"].str.startswith("pulse")]


def pulses(actions: list[tuple[float, Action]]) -> list[tuple[int, int | None]]:
    """(frame, animal) of every pulse."""
    return [(round(t * FPS), a.animal) for t, a in actions if a.command == "pulse"]


# --- config rules -------------------------------------------------------------------------------

ANIMAL_2_ONLY = ("oooooooooooo", "ooiiooiooioo")
ALTERNATING = ("ooiioooiiooo", "oooooiiooioo")
BOTH_AT_ONCE = ("ooiiooiio", "ooiiooooo")


@pytest.mark.parametrize("paths", [ANIMAL_2_ONLY, ALTERNATING, BOTH_AT_ONCE])
def test_each_fires_once_per_entry_of_each_animal_and_names_it(paths) -> None:
    actions, events = run(config("each"), walk(*paths))
    expected = sorted((n, a + 1) for a, path in enumerate(paths) for n in entries(path))
    assert pulses(actions) == expected
    rows = pulse_rows(events)
    assert [(int(f), int(a)) for f, a in zip(rows["frame_index"], rows["animal"], strict=True)] == (
        expected
    )
    # One trigger event per animal's change, naming the animal; its position is that animal's.
    rose = events[(events["kind"] == "trigger") & events["detail"].str.startswith("true")]
    assert sorted((int(f), int(a)) for f, a in zip(rose.frame_index, rose.animal, strict=True)) == (
        expected
    )
    assert set(rose["measured_x"].astype(float)) == {IN[0]}


def _any_rises(paths: Sequence[str]) -> list[int]:
    """Frames where "some animal entered" becomes true (it was not in the frame before)."""
    some = [any(n in entries(p) for p in paths) for n in range(len(paths[0]))]
    return [n for n in range(len(some)) if some[n] and not (n and some[n - 1])]


@pytest.mark.parametrize("paths", [ANIMAL_2_ONLY, ALTERNATING, BOTH_AT_ONCE])
def test_any_fires_once_per_update_in_which_some_animal_entered(paths) -> None:
    actions, events = run(config("any"), walk(*paths))
    assert [n for n, _ in pulses(actions)] == _any_rises(paths)
    assert all(animal is None for _, animal in pulses(actions))  # one state: no animal of its own
    rose = events[(events["kind"] == "trigger") & events["detail"].str.startswith("true")]
    for index, animal in zip(rose["frame_index"], rose["animal"], strict=True):
        entered = [str(a + 1) for a, p in enumerate(paths) if int(index) in entries(p)]
        assert animal == "+".join(entered)  # the animals that made it true
    assert list(pulse_rows(events)["animal"]) == list(rose["animal"])
    # the switch-off at the stop: no animal made it
    assert list(events[events["detail"].str.startswith("off")]["animal"]) == [""]


def test_any_and_each_count_differently_when_both_enter_together() -> None:
    each, _ = run(config("each"), walk(*BOTH_AT_ONCE))
    any_, _ = run(config("any"), walk(*BOTH_AT_ONCE))
    assert len(pulses(each)) == 3 and len(pulses(any_)) == 2  # frames 2 (both) and 6 (animal 1)


def test_refractory_counts_per_animal() -> None:
    # Animal 1 enters at frames 2 and 4 (0.2 s apart), animal 2 at frames 3 and 9.
    paths = ("ooioiioooo", "oooioooooi")
    each, _ = run(config("each", refractory=0.5), walk(*paths))
    # Animal 1's second entry falls in its own refractory period; animal 2's is not held back.
    assert pulses(each) == [(2, 1), (3, 2), (9, 2)]
    any_, _ = run(config("any", refractory=0.5), walk(*paths))
    assert [n for n, _ in pulses(any_)] == [2, 9]  # one rule, one period: 3 and 4 fall in it


def test_animal_n_still_reads_that_animal_only() -> None:
    actions, events = run(config("2"), walk(*ALTERNATING))
    assert [n for n, _ in pulses(actions)] == entries(ALTERNATING[1])
    assert set(pulse_rows(events)["animal"]) == {"2"}


def test_a_single_animal_model_runs_any_and_each_as_animal_1_with_no_animal_column() -> None:
    path = "ooiiooiooioo"
    for animal in ("any", "each"):
        actions, events = run(config(animal), walk(path))
        assert [n for n, _ in pulses(actions)] == entries(path)
        assert set(events["animal"]) == {""}


def test_each_starts_the_experiments_one_trial_and_its_cause_names_the_animal() -> None:
    text = textwrap.dedent("""
        [Experiment]
        TRIAL_DURATION =

        [Trigger zone]
        KIND = region
        SHAPE = circle 100 100 30
        HOLD_S = 0
        ANIMAL = each

        [Stimulation light]
        DEVICE = lamp
        COMMAND = on

        [Rule light_on]
        WHEN = zone
        DO = light
        STARTS_TRIAL = true
    """)
    actions, events = run(text, walk("ooiiiooo", "oooiiioo"))
    assert pulses(actions) == []
    ons = [(round(t * FPS), a.animal) for t, a in actions if a.command == "on"]
    assert ons == [(2, 1)]  # animal 2's entry (frame 3) finds the trial started
    starts = events[events["kind"] == "trial_start"]
    assert list(starts["name"]) == ["light_on (animal 1)"]


def test_min_identity_confidence_applies_to_each_animal() -> None:
    # Animal 2 enters twice; the second time its identity is in doubt (confidence 0.5).
    frames = [
        frame(0, [OUT, OUT], [1, 1]), frame(1, [OUT, IN], [1, 1]), frame(2, [OUT, OUT], [1, 1]),
        frame(3, [OUT, IN], [1, 0.5]), frame(4, [IN, OUT], [1, 1]),
    ]  # fmt: skip
    actions, _ = run(config("each", extra="MIN_IDENTITY_CONFIDENCE = 0.9"), frames)
    assert pulses(actions) == [(1, 2), (4, 1)]


# --- Python -------------------------------------------------------------------------------------


class _PerAnimalPulses(Experiment):
    """Pulses channel N-1 for animal N's own entry, read with rose(name, animal)."""

    def __init__(self) -> None:
        super().__init__(trial_duration_s=None)
        self.add_trigger("zone", EachAnimal(Region(Circle(100, 100, 30), "entered", hold_s=0)))
        self.add_trigger("some", AnyAnimal(Region(Circle(100, 100, 30), "inside", hold_s=0)))
        self.seen: list[tuple[int, tuple[int, ...], bool, bool, bool]] = []

    def on_update(self, obs, t):
        frame_index = round(t * FPS)
        self.seen.append(
            (frame_index, self.animals_rose("zone"), self.rose("zone"),
             self.is_true("some", animal=2), self.rose("some"))
        )  # fmt: skip
        return [
            Action.pulse("laser", animal - 1, 0.01).for_animal(animal)
            for animal in (1, 2)
            if self.rose("zone", animal)
        ]


def test_python_experiments_read_each_animals_edges() -> None:
    experiment = _PerAnimalPulses()
    runtime = ExperimentRuntime(experiment)
    runtime.start()
    sent = [a for obs in walk(*ALTERNATING) for a in runtime.update(obs)]
    expected = sorted((n, a + 1) for a, p in enumerate(ALTERNATING) for n in entries(p))
    assert [(a.channel + 1) for a in sent] == [animal for _, animal in expected]
    rose_frames = [(n, animals) for n, animals, *_ in experiment.seen if animals]
    assert rose_frames == [(n, (a,)) for n, a in expected]
    assert all(rose == bool(animals) for _, animals, rose, *_ in experiment.seen)
    inside_2 = [n for n, _, _, inside, _ in experiment.seen if inside]
    assert inside_2 == [n for n, c in enumerate(ALTERNATING[1]) if c == "i"]
    assert runtime.summary()["triggers"]["zone"]["times_true"] == len(expected)
    rows = runtime.events.of_kind("action")
    assert [row.animal for row in rows] == [str(a) for _, a in expected]


# --- the factory --------------------------------------------------------------------------------


def test_animal_takes_a_number_any_or_each_and_rebuilds_from_describe() -> None:
    assert (
        "any" in parameters_of("region")["animal"]
        and "each" in parameters_of("speed_above")["animal"]
    )
    for word, cls in (("any", AnyAnimal), ("each", EachAnimal), ("3", ForAnimal)):
        trigger = make_trigger("region", {"shape": ZONE, "animal": word})
        assert isinstance(trigger, cls)
        again = make_trigger(
            "region", {k: str(v) for k, v in trigger.describe().items() if k != "kind"}
        )
        assert again.describe() == trigger.describe()
    with pytest.raises(ValueError, match=r"parameter 'animal' = 'every' is not valid.*any.*each"):
        make_trigger("region", {"shape": ZONE, "animal": "every"})
    with pytest.raises(ValueError, match="forward prediction follows animal 1 only"):
        make_trigger("region", {"shape": ZONE, "animal": "each", "predicted": "true"})
    with pytest.raises(ValueError, match="reads two animals"):
        make_trigger("contact", {"animal": "each"})


def test_each_keeps_a_memory_per_animal() -> None:
    # A dwell of 0.15 s: each animal's own timer (animal 2 arriving late does not share 1's).
    trigger = make_trigger(
        "region", {"shape": ZONE, "min_dwell_s": "0.15", "hold_s": "0", "animal": "each"}
    )
    states = []
    for obs in walk("oiiiiii", "oooiiii"):
        trigger.update(obs)
        states.append(trigger.animal_states())
    assert [s[1] for s in states] == [False, False, False, True, True, True, True]
    assert [s[2] for s in states] == [False, False, False, False, False, True, True]
    assert Region(Circle(1, 1, 1)).animal_states() is None


# --- lab kinds: the common parameters -----------------------------------------------------------

LAB_TRIGGER = """
from typing import Any

from deeplabstream.experiments.triggers.base import Trigger
from deeplabstream.experiments.triggers.kinds import TriggerKind, number


class NoseLeft(Trigger):
    # A lab's trigger written against the plain interface: no camera, no likelihood keywords.
    kind = "lab_nose_left"

    def __init__(self, x: float = 200.0) -> None:
        super().__init__()
        self.x = x

    def keypoints_read(self) -> tuple[str, ...]:
        return ("nose",)

    def step(self, obs) -> bool:
        point = obs.point("nose")
        return point is not None and point[0] < self.x

    def params(self) -> dict[str, Any]:
        return {"x": self.x}


KIND = TriggerKind("lab_nose_left", NoseLeft, "The nose left of X.", {"x": number()})
"""


@pytest.fixture
def lab_folder(tmp_path: Path):
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "lab_nose_left.py").write_text(LAB_TRIGGER, encoding="utf-8")
    with using_settings_folder(tmp_path):
        yield tmp_path


def _seen(likelihood: float, x: float = 100.0, t: float = 0.0, camera: str = "cam"):
    return Observation(t, camera, int(t * FPS), np.array([[x, 100.0, likelihood]]), ("nose",))


def test_a_lab_kind_takes_the_common_parameters_without_declaring_them(lab_folder) -> None:
    parameters = parameters_of("lab_nose_left")
    for key in ("camera", "min_likelihood", "policy", "hold_s", "animal"):
        assert key in parameters, key
    trigger = make_trigger(
        "lab_nose_left", {"camera": "top", "min_likelihood": "0.8", "hold_s": "0", "x": "150"}
    )
    assert isinstance(trigger, FilteredTrigger) and trigger.cameras_read() == ("top",)
    assert trigger.update(_seen(0.9, camera="top"))
    assert not trigger.update(_seen(0.7, camera="top", t=0.1))  # below 0.8: not seen
    side = _seen(0.9, x=500.0, camera="side", t=0.2)  # another camera: no news, state kept
    assert not trigger.update(Observations(0.2, {"side": side, "top": _seen(0.7, t=0.2)}))
    described = {k: str(v) for k, v in trigger.describe().items() if k != "kind"}
    assert make_trigger("lab_nose_left", described).describe() == trigger.describe()


def test_a_lab_kinds_hold_bridges_a_short_loss(lab_folder) -> None:
    trigger = make_trigger("lab_nose_left", {"hold_s": "0.25"})
    assert trigger.update(_seen(0.9, t=0.0))
    assert trigger.update(_seen(0.1, t=0.2))  # lost for 0.2 s: held
    assert not trigger.update(_seen(0.1, t=0.4))  # 0.4 s: decided on, not seen
    held = make_trigger("lab_nose_left", {"policy": "hold", "hold_s": "0.25"})
    assert held.update(_seen(0.9, t=0.0)) and held.update(_seen(0.1, x=900, t=0.2))


def test_the_experiment_defaults_reach_a_lab_kind(lab_folder) -> None:
    text = textwrap.dedent("""
        [Experiment]
        MIN_LIKELIHOOD = 0.95
        HOLD = 0

        [Trigger left]
        KIND = lab_nose_left
        ANIMAL = each

        [Stimulation pulse]
        DEVICE = laser
        COMMAND = pulse
        DURATION = 0.05

        [Rule go]
        WHEN = left
        DO = pulse
    """)
    trigger = parse_experiment_config(text).build().triggers["left"]
    assert trigger.describe()["min_likelihood"] == 0.95 and trigger.describe()["hold_s"] == 0
    frames = [
        Observation(n / FPS, "cam", n, np.array([[100.0, 1.0, p]]), ("nose",),
                    animals=np.array([[[100.0, 1.0, p]], [[100.0, 1.0, 0.99]]]))
        for n, p in enumerate([0.5, 0.99, 0.5, 0.99])
    ]  # fmt: skip
    actions, _ = run(text, frames)
    # Animal 1 is seen (>= 0.95) in frames 1 and 3 only; animal 2 from frame 0 on.
    assert pulses(actions) == [(0, 2), (1, 1), (3, 1)]
    assert list(EVENT_COLUMNS).index("animal") == len(EVENT_COLUMNS) - 1


def test_the_pages_example_fires_once_per_fly_entry_with_refractory_per_fly() -> None:
    """docs/experiments.md, "Any animal, each animal": its config, run as written."""
    page = Path(__file__).resolve().parents[3] / "docs" / "experiments.md"
    if not page.is_file():
        pytest.skip(f"{page} is not in this checkout")
    section = page.read_text(encoding="utf-8").split("**Any animal, each animal", 1)[1]
    text = section.split("```ini\n", 1)[1].split("```", 1)[0]
    inside, outside = (512.0, 512.0), (100.0, 100.0)

    def fly_frame(index: int, flies: Sequence[tuple[float, float]]) -> Observation:
        rows = np.array([[[x, y, 0.9]] for x, y in flies], float)
        return Observation(index / FPS, "cam", index, rows[0], ("head",), animals=rows)

    # Fly 1 enters at frames 1 and 5 (0.4 s apart: within REFRACTORY = 2), fly 2 at frame 3.
    paths = ("oiioiio", "oooiiio")
    where = {"i": inside, "o": outside}
    frames = [fly_frame(n, [where[p[n]] for p in paths]) for n in range(len(paths[0]))]
    actions, events = run(text, frames)
    assert [(round(t * FPS), a.animal) for t, a in actions if a.command == "pulse"] == [
        (1, 1),
        (3, 2),
    ]
    assert list(pulse_rows(events)["animal"]) == ["1", "2"]
