"""Issue 71 (partly): verify's summary names the model that re-derived the keypoints, too.

Before: a session.json whose ``pose`` named the bundled model while its settings (so the
offline analysis) loaded another read "agrees", and ``verify/summary.json`` named the bundled
model only. Now each camera's model entry has ``re_derived_with`` (the model the offline
analysis loaded, from its own record) and a record that contradicts itself differs, naming both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deeplabstream.core.digest import file_sha256
from deeplabstream.outputs.signature import installation_key, sign_record
from deeplabstream.pose.loading import BUNDLED_MODEL
from tests.support.ensembles import perturbed_member
from tests.support.files import write_settings
from tests.support.paths import PROJECT_ROOT
from tests.support.verify_sessions import run_verify

SETTINGS = (
    "[Camera arena]\nSOURCE = synthetic\nFRAMERATE = 30\n"
    "[Recording]\nCODEC = ffv1\nMIN_FREE_SPACE = 0\nWARN_FREE_SPACE = 0\n"
)


@pytest.mark.slow  # a session and its verification
def test_a_record_naming_the_bundled_model_while_another_ran_differs_naming_both(
    tmp_path: Path,
) -> None:
    other = perturbed_member(tmp_path / "other_model", seed=3, scale=0.01, name="other_model")
    settings = write_settings(tmp_path, SETTINGS)
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "DeepLabStream.py"), "--headless", "--settings",
         str(settings), "--output-dir", str(tmp_path / "out"), "--recording-enabled",
         "--pose-enabled", "--frames", "60", "--model", str(other)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    (record_file,) = (tmp_path / "out").glob("*/session.json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads(record_file.read_text(encoding="utf-8"))
    record.pop("signature")
    bundled = BUNDLED_MODEL / "model.onnx"
    record["pose"]["model"].update(name="arena", file=str(bundled), sha256=file_sha256(bundled))
    key = installation_key()
    assert key is not None
    record_file.write_text(json.dumps(sign_record(record, key), indent=1), encoding="utf-8")
    code, summary, output = run_verify(record_file.parent)
    assert code == 1, output
    (model,) = summary["provenance"]["models"]
    assert model["name"] == "arena" and model["re_derived_with"]["name"] == "other_model"
    assert model["re_derived_with"]["sha256"] == file_sha256(other / "model.onnx")
    assert any(
        "session.json's pose names the model 'arena'" in reason
        and f"its settings load 'other_model' ({other / 'model.onnx'}" in reason
        for reason in summary["reasons"]
    ), summary["reasons"]
