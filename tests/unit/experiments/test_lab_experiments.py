"""The lab's experiments/ folder beside the settings file: configs and modules found by name.

``NAME = my_config`` finds ``experiments/my_config.ini`` next to the settings file, ahead of a
shipped config of that name; ``NAME = my_module[:Class]`` imports ``experiments/my_module.py``;
the experiment process, which has no settings folder, gets the lab's experiment as its path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deeplabstream.experiments.registry import (
    CONFIG_FOLDER,
    ExperimentNotFoundError,
    available_experiments,
    config_file_of,
    load_experiment,
    resolved_name,
)
from deeplabstream.live.session.preflight import check_before_start
from deeplabstream.settings import load_settings
from tests.support.files import write_settings

LAB_MODULE = """
from deeplabstream.experiments.actions import Action
from deeplabstream.experiments.base import Experiment


class Blink(Experiment):
    def on_update(self, obs, t):
        return [Action.pulse("led", 0, 0.1)] if self.start_trial("blink") else []
"""


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A settings folder whose experiments/ holds a config, a copy of a shipped one, a module."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "my_dwell.ini").write_text((CONFIG_FOLDER / "reward_on_dwell.ini").read_text())
    own_example = (CONFIG_FOLDER / "ExampleExperiment.ini").read_text()
    (folder / "ExampleExperiment.ini").write_text("; the lab's edited copy\n" + own_example)
    (folder / "blink.py").write_text(LAB_MODULE)
    return tmp_path


def test_configs_and_modules_of_the_labs_folder_load_by_name(lab: Path) -> None:
    assert load_experiment("my_dwell", lab).name == "my_dwell"
    assert config_file_of("my_dwell", lab) == (lab / "experiments" / "my_dwell.ini").resolve()
    # The lab's copy comes before the shipped config of the same name; without the folder,
    # the shipped one.
    assert (
        config_file_of("ExampleExperiment", lab)
        == (lab / "experiments" / "ExampleExperiment.ini").resolve()
    )
    assert config_file_of("ExampleExperiment") == CONFIG_FOLDER / "ExampleExperiment.ini"
    assert type(load_experiment("blink", lab)).__name__ == "Blink"
    assert type(load_experiment("blink:Blink", lab)).__name__ == "Blink"
    assert config_file_of("blink:Blink", lab) is None
    with pytest.raises(ExperimentNotFoundError, match="unknown experiment 'blink'"):
        load_experiment("blink")  # no settings folder: no lab folder either


def test_the_list_shows_the_labs_experiments_first_then_the_shipped_ones(lab: Path) -> None:
    names = available_experiments(lab)
    assert names[:3] == ["ExampleExperiment", "my_dwell", "blink"]
    assert names.count("ExampleExperiment") == 1
    assert "freezing_opto" in names and names[-1] == "examples:AlternatingReward"


def test_an_unknown_name_lists_the_labs_folder_too(lab: Path) -> None:
    with pytest.raises(ExperimentNotFoundError) as info:
        load_experiment("my_dwel", lab)
    text = str(info.value)
    assert text.startswith("unknown experiment 'my_dwel'; known: ExampleExperiment, ")
    assert f"in {lab / 'experiments'}: ExampleExperiment, my_dwell, blink." in text
    assert "Set [Experiment] NAME (or --experiment)" in text


def test_the_experiment_process_gets_the_labs_experiment_as_its_path(lab: Path) -> None:
    folder = (lab / "experiments").resolve()
    assert resolved_name("my_dwell", lab) == str(folder / "my_dwell.ini")
    assert resolved_name("blink:Blink", lab) == f"{folder / 'blink.py'}:Blink"
    assert resolved_name("freezing_opto", lab) == "freezing_opto"  # shipped: as named
    assert resolved_name("examples:AlternatingReward", lab) == "examples:AlternatingReward"
    assert type(load_experiment(resolved_name("blink", lab))).__name__ == "Blink"


def test_the_check_before_the_start_reads_the_labs_folder(lab: Path) -> None:
    text = (
        "[Camera arena]\nSOURCE = synthetic\n[Device led]\nTYPE = log\n[Experiment]\nNAME = blink\n"
    )
    settings = load_settings(write_settings(lab, text))
    assert check_before_start(settings, False, True) == []
    broken = lab / "experiments" / "broken.py"
    broken.write_text("import not_installed_sdk_xyz\n")
    settings = load_settings(write_settings(lab, text.replace("blink", "broken")))
    [problem] = check_before_start(settings, False, True)
    assert f"[Experiment] NAME in {lab / 'settings.ini'} ('broken')" in problem
    assert "No module named 'not_installed_sdk_xyz'" in problem
