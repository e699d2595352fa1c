"""The keypoint plot's fourth plot: an ensemble's spread per keypoint, shown only for one."""

from __future__ import annotations

import numpy as np
import pytest

from deeplabstream.app.gui.keypoint_plot import KeypointPlot


def test_an_ensembles_camera_shows_each_keypoints_spread(qtbot) -> None:
    plot = KeypointPlot()
    qtbot.addWidget(plot)
    plot.show()
    keypoints = ("nose", "tail")
    for frame in range(20):
        pose = np.array([[frame, 10.0, 0.9], [frame + 5, 20.0, 0.8]])
        plot.add_pose("top", frame / 30, pose, keypoints, 0.5, np.array([frame / 10, 3.0]))
        plot.add_pose("side", frame / 30, pose, keypoints, 0.5)  # one model: no spread
    times, spread = plot.spread_series("top", "nose")
    assert len(times) == 20 and spread[-1] == pytest.approx(1.9)
    assert plot.series("top", 0, "nose")[1][-1].tolist() == [19.0, 10.0, 0.9]
    plot.camera.setCurrentText("top")
    plot._changed = True
    plot.redraw()
    assert plot.plots["spread"].isVisible()
    _, ys = plot._curves["spread"][1].getData()
    assert ys[-1] == pytest.approx(3.0)
    plot.camera.setCurrentText("side")
    plot._changed = True
    plot.redraw()
    assert not plot.plots["spread"].isVisible()
    assert np.isnan(plot.spread_series("side", "nose")[1]).all()
