"""A crafted DeepLabCut labels ``.h5`` never runs code when read (issue 37, 7).

pandas' HDF5 reader unpickles object columns, and PyTables unpickles pickled attributes: a
crafted ``CollectedData_x.h5`` whose pickle opens (creates) a marker file would run through
``utils/ImageAnalyzer.py``, ``deeplabstream-train --labels`` and ``read_dlc_labels``. Each is
refused with a message naming the file and ``--trust-pickle``, and the marker never appears;
with ``--trust-pickle`` (a file the user trusts) the code does run, which shows the crafted
file is a real threat and the check the only thing in its way.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest

from deeplabstream.core.errors import LabelsError
from deeplabstream.offline.labels import read_dlc_labels
from tests.support.paths import PROJECT_ROOT

pytest.importorskip("tables")


class Marker:
    """Unpickled, it opens (creates) the marker file: harmless, and proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def labels_table(images: list[str]) -> pd.DataFrame:
    columns = pd.MultiIndex.from_product(
        [["me"], ["snout", "tail"], ["x", "y"]], names=["scorer", "bodyparts", "coords"]
    )
    values = np.arange(len(images) * 4, dtype=np.float64).reshape(len(images), 4) + 10
    return pd.DataFrame(values, index=images, columns=columns)


def project(tmp_path: Path) -> tuple[Path, list[str]]:
    """A DeepLabCut project folder with two labelled images; the labels' folder."""
    folder = tmp_path / "project" / "labeled-data" / "video"
    folder.mkdir(parents=True)
    names = []
    for index in range(2):
        cv2.imwrite(str(folder / f"img{index}.png"), np.full((64, 64, 3), index, np.uint8))
        names.append(f"labeled-data/video/img{index}.png")
    return folder, names


def object_column_file(tmp_path: Path, marker: Path) -> Path:
    """Labels with one more column of Python objects, one of them the marker's pickle."""
    folder, names = project(tmp_path)
    table = labels_table(names)
    table[("me", "note", "x")] = pd.Series([Marker(marker), "fine"], index=names, dtype=object)
    path = folder / "CollectedData_me.h5"
    with pytest.warns(pd.errors.PerformanceWarning):  # pandas says it pickles the column
        table.to_hdf(path, key="df_with_missing", mode="w", format="fixed")
    return path


def pickled_attribute_file(tmp_path: Path, marker: Path) -> Path:
    """Labels as DeepLabCut writes them (table format), one attribute swapped for the pickle."""
    import pickle

    folder, names = project(tmp_path)
    path = folder / "CollectedData_me.h5"
    labels_table(names).to_hdf(path, key="df_with_missing", mode="w", format="table")
    with h5py.File(path, "r+") as file:
        file["df_with_missing"].attrs["metadata"] = np.bytes_(pickle.dumps(Marker(marker), 0))
    return path


def text_attribute_file(tmp_path: Path, marker: Path) -> Path:
    """The pickle as a variable-length ASCII string attribute (issue 44, 1).

    h5py returns it as ``str``; PyTables returns it as bytes and unpickles it, whatever the
    attribute's name, as soon as pandas opens the group.
    """
    import pickle

    folder, names = project(tmp_path)
    path = folder / "CollectedData_me.h5"
    labels_table(names).to_hdf(path, key="df_with_missing", mode="w", format="table")
    text = pickle.dumps(Marker(marker), 0).decode("ascii")
    with h5py.File(path, "r+") as file:
        file["df_with_missing"].attrs.create("note", text, dtype=h5py.string_dtype("ascii"))
    return path


CRAFTED = [object_column_file, pickled_attribute_file, text_attribute_file]


@pytest.mark.parametrize("craft", CRAFTED)
def test_read_dlc_labels_refuses_a_pickle_that_would_run_code(tmp_path, craft):
    marker = tmp_path / "code-ran"
    path = craft(tmp_path, marker)
    with pytest.raises(LabelsError) as refused:
        read_dlc_labels(path)
    text = str(refused.value)
    assert str(path) in text and "--trust-pickle" in text and "run" in text
    assert not marker.exists()


@pytest.mark.parametrize("craft", CRAFTED)
def test_the_commands_refuse_it_and_run_nothing(tmp_path, craft):
    marker = tmp_path / "code-ran"
    path = craft(tmp_path, marker)
    images = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "utils" / "ImageAnalyzer.py"), str(path),
         "--model", str(tmp_path / "no-model")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert images.returncode == 2, images.stdout + images.stderr
    assert "--trust-pickle" in images.stderr and "Traceback" not in images.stderr
    assert not marker.exists()
    train = subprocess.run(
        [sys.executable, "-m", "deeplabstream.offline.training.train", "--labels", str(path),
         "--out", str(tmp_path / "model"), "--steps", "1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert train.returncode != 0
    assert "--trust-pickle" in train.stderr and "Traceback" not in train.stderr, train.stderr
    assert not marker.exists()


def _pickle_of(marker: Path) -> bytes:
    import pickle

    return pickle.dumps(Marker(marker), 0)


#: Every form in which h5py hands an attribute back, each holding the marker's pickle: where
#: it sits (a node of the file) and how it is stored.
ATTRIBUTE_FORMS = {
    "vlen utf-8 text": ("df_with_missing", lambda p: (p.decode(), h5py.string_dtype("utf-8"))),
    "vlen bytes": ("df_with_missing", lambda p: (p, h5py.string_dtype("ascii"))),
    "fixed bytes on the table": ("df_with_missing/table", lambda p: (np.bytes_(p), None)),
    "text on the root": ("/", lambda p: (p.decode(), h5py.string_dtype("ascii"))),
    "array of vlen text": (
        "df_with_missing",
        lambda p: (np.array(["fine", p.decode()], dtype=object), h5py.string_dtype("utf-8")),
    ),
    "array of fixed bytes": ("df_with_missing", lambda p: (np.array([b"a", p]), None)),
    "2-d array of vlen bytes": (
        "df_with_missing",
        lambda p: (np.array([[b"a", p]], dtype=object), h5py.string_dtype("ascii")),
    ),
    "opaque bytes": ("df_with_missing", lambda p: (np.void(p), None)),
    "compound with a text field": (
        "df_with_missing",
        lambda p: (
            np.array([(1, p)], dtype=[("n", "i4"), ("s", h5py.string_dtype("ascii"))]),
            None,
        ),
    ),
}


@pytest.mark.parametrize("form", list(ATTRIBUTE_FORMS))
def test_a_pickle_in_any_form_of_attribute_is_refused(tmp_path, form):
    marker = tmp_path / "code-ran"
    folder, names = project(tmp_path)
    path = folder / "CollectedData_me.h5"
    labels_table(names).to_hdf(path, key="df_with_missing", mode="w", format="table")
    node, make = ATTRIBUTE_FORMS[form]
    value, dtype = make(_pickle_of(marker))
    with h5py.File(path, "r+") as file:
        file[node].attrs.create("crafted", value, dtype=dtype)
    with pytest.raises(LabelsError) as refused:
        read_dlc_labels(path)
    assert "'crafted'" in str(refused.value) and "--trust-pickle" in str(refused.value)
    assert not marker.exists()


def test_a_pseudo_atom_stored_as_text_is_still_seen(tmp_path):
    """PyTables unpickles every row of a dataset whose PSEUDOATOM says object, in any form."""
    marker = tmp_path / "code-ran"
    path = object_column_file(tmp_path, marker)
    with h5py.File(path, "r+") as file:

        def retype(name, node):
            if isinstance(node, h5py.Dataset) and "PSEUDOATOM" in node.attrs:
                del node.attrs["PSEUDOATOM"]
                node.attrs.create("PSEUDOATOM", "object", dtype=h5py.string_dtype("ascii"))

        file.visititems(retype)
    with pytest.raises(LabelsError, match="pickled Python objects"):
        read_dlc_labels(path)
    assert not marker.exists()


def test_an_attribute_h5py_cannot_read_is_refused_not_passed(tmp_path):
    """What the inspection cannot read, PyTables might: refused, never waved through.

    An HDF5 time attribute (H5T_UNIX_D32LE) has no NumPy equivalent: h5py cannot read it.
    """
    folder, names = project(tmp_path)
    path = folder / "CollectedData_me.h5"
    labels_table(names).to_hdf(path, key="df_with_missing", mode="w", format="table")
    with h5py.File(path, "r+") as file:
        space = h5py.h5s.create(h5py.h5s.SCALAR)
        h5py.h5a.create(file["df_with_missing"].id, b"crafted", h5py.h5t.UNIX_D32LE, space)
    with pytest.raises(LabelsError, match="'crafted' cannot be inspected"):
        read_dlc_labels(path)
    assert read_dlc_labels(path, trust_pickle=True).keypoints == ("snout", "tail")


def test_trust_pickle_runs_the_text_attribute_too(tmp_path):
    """The issue's file is a real threat: read with trust, PyTables unpickles the text."""
    marker = tmp_path / "code-ran"
    path = text_attribute_file(tmp_path, marker)
    read_dlc_labels(path, trust_pickle=True)
    assert marker.exists()


def test_trust_pickle_reads_it_and_the_code_runs(tmp_path):
    """The crafted file is a real threat: read with trust, its pickle runs."""
    marker = tmp_path / "code-ran"
    path = object_column_file(tmp_path, marker)
    with pytest.raises(LabelsError):  # the object column is no coordinate
        read_dlc_labels(path, trust_pickle=True)
    assert marker.exists()


def test_deeplabcuts_own_h5_labels_still_read(tmp_path):
    folder, names = project(tmp_path)
    path = folder / "CollectedData_me.h5"
    labels_table(names).to_hdf(path, key="df_with_missing", mode="w", format="table")
    labels = read_dlc_labels(path)
    assert labels.keypoints == ("snout", "tail") and labels.coordinates.shape == (2, 2, 2)
    np.testing.assert_array_equal(labels.coordinates[1, 1], [16, 17])
