"""Pose models made by the tests: the bundled model's folder with a TorchScript file added."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

from deeplabstream.pose.loading import BUNDLED_MODEL


def bundled_model_with_torchscript(folder: Path) -> Path:
    """Copy the bundled model's folder to ``folder`` and add ``model.pt`` as training would.

    The TorchScript file is the bundled network's shape (``model.json`` ``network``), traced as
    ``offline/training/export.py`` traces a trained one, with seeded weights: the bundled model
    ships its weights only inside its ONNX graph, so its own weights cannot be traced. What the
    folder shows is this project's format with a TorchScript file, which ``[Pose] BACKEND =
    pytorch`` must run; not the bundled model's accuracy.
    """
    import torch

    from deeplabstream.pose.networks.own import NetworkConfig, PoseNet, example_input

    shutil.copytree(BUNDLED_MODEL, folder)
    data = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    config = NetworkConfig.from_dict(data["network"])
    torch.manual_seed(0)
    network = PoseNet(config).eval()
    height, width = data["input"]["height"], data["input"]["width"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice
        traced = torch.jit.trace(network, example_input(config, 1, height, width))
        traced.save(str(folder / "model.pt"))
    data["files"]["torchscript"] = "model.pt"
    (folder / "model.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return folder
