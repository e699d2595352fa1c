"""The Regions tab's rule panel shows and edits a region's HOLD_S (issue 38), offscreen."""

from __future__ import annotations

from dataclasses import dataclass

from PyQt5.QtWidgets import QDoubleSpinBox

from deeplabstream.app.gui.region_rule_panel import RegionRulePanel, RigChoices
from deeplabstream.experiments.config.edit import NO_ACTION, RegionAction


@dataclass
class _Region:
    """What the panel edits of a region (the editor's Region has these attributes)."""

    name: str
    camera: str | None
    keypoint: str | None
    action: RegionAction | None
    action_changed: bool = False
    animal: str | None = None


def test_the_rule_panel_lists_the_hold_and_writes_it_into_the_action(qtbot) -> None:
    panel = RegionRulePanel()
    qtbot.addWidget(panel)
    region = _Region("zone", None, "nose", RegionAction("box", "pulse", 0, 0.1, hold_s=0.5))
    choices = RigChoices(cameras=("top",), keypoints=("nose",), devices=("box",))
    panel.show_region(region, choices, editable=True)
    hold = panel.findChild(QDoubleSpinBox, "region_hold")
    assert hold is not None and hold.isVisibleTo(panel) and hold.isEnabled()
    assert hold.value() == 0.5 and hold.suffix() == " s"
    assert "HOLD_S" in hold.toolTip() and "not seen" in hold.toolTip()
    label = panel.layout().labelForField(hold)
    assert label is not None and label.text() == "Hold through loss:"

    with qtbot.waitSignal(panel.changed) as changed:
        hold.setValue(0.2)
    assert region.action_changed and region.action is not None
    assert region.action.hold_s == 0.2
    assert "holds 0.2 s through a loss" in changed.args[0]

    region.action = RegionAction.removed(region.action)  # no action: no rule, no hold shown
    panel.show_region(region, choices, editable=True)
    assert region.action.command == NO_ACTION and not hold.isVisibleTo(panel)
