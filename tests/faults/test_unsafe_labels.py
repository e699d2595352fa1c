"""A crafted DeepLabCut labels ``.h5`` never runs code when read, whatever its bytes (issue 53, 1).

pandas' HDF5 reader unpickles object columns and PyTables unpickles attributes that look like
pickles; a check that parses a pickle before either reads it was defeated (a LONG opcode written
in base 16, ``L0x1L``, stops ``pickletools`` before the ``GLOBAL``). So labels are read with h5py
into arrays and strings, and the few attributes PyTables pickled by an unpickler that refuses
every global (``offline/labels_hdf5.py``). Each crafted file below holds a pickle that would
create a marker file; the marker never appears, through ``read_dlc_labels``,
``utils/ImageAnalyzer.py`` and ``deeplabstream-train --labels``; DeepLabCut's own files (every
layout pandas writes, and a real project's labels) still read, equal to the CSV beside them.
"""

from __future__ import annotations

import copyreg
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest

from deeplabstream.core.errors import LabelsError
from deeplabstream.offline.labels import read_dlc_labels
from deeplabstream.offline.labels_hdf5 import CodeRefused, plain_value
from tests.support.paths import PROJECT_ROOT, shared_data


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


def labels_file(tmp_path: Path, layout: str = "table") -> Path:
    folder, names = project(tmp_path)
    path = folder / "CollectedData_me.h5"
    labels_table(names).to_hdf(path, key="df_with_missing", mode="w", format=layout)
    return path


# -- pickles that reach code, each written by hand where pickle.dumps would not -----------------


def long_base16_global(marker: Path) -> bytes:
    """The issue's pickle: a protocol-0 LONG in base 16 first, which stops pickletools."""
    return b"L0x1L\n0cbuiltins\nopen\n(V" + str(marker).encode() + b"\nVw\ntR."


def protocol_0_global(marker: Path) -> bytes:
    return pickle.dumps(Marker(marker), 0)


def stack_global(marker: Path) -> bytes:
    return pickle.dumps(Marker(marker), 4)


def inst(marker: Path) -> bytes:
    """INST: the class (here a function) named inline, called with the marked arguments."""
    return b"(V" + str(marker).encode() + b"\nVw\nibuiltins\nopen\n."


def extension_code(marker: Path) -> bytes:
    """EXT1: a callable registered with copyreg (registered by the test around the read)."""
    return (
        b"\x80\x02\x82\xf0(X"
        + len(str(marker)).to_bytes(4, "little")
        + str(marker).encode()
        + b"X\x01\x00\x00\x00wtR."
    )


def persistent_id(marker: Path) -> bytes:
    return b"P" + str(marker).encode() + b"\n."


def global_then_garbage(marker: Path) -> bytes:
    """No whole pickle: the import comes before the first byte that is not valid."""
    return b"cbuiltins\nopen\n(V" + str(marker).encode() + b"\nVw\ntR\xff\xff"


TRICKS: dict[str, Callable[[Path], bytes]] = {
    "LONG in base 16 before GLOBAL": long_base16_global,
    "protocol 0 GLOBAL + REDUCE": protocol_0_global,
    "protocol 4 STACK_GLOBAL": stack_global,
    "INST": inst,
    "EXT1 (copyreg extension)": extension_code,
    "persistent id": persistent_id,
    "GLOBAL then garbage": global_then_garbage,
}


@pytest.fixture
def open_as_extension():
    """Register builtins.open as copyreg extension 240 (what an EXT1 pickle names)."""
    copyreg.add_extension("builtins", "open", 240)
    try:
        yield
    finally:
        copyreg.remove_extension("builtins", "open", 240)


@pytest.mark.parametrize("trick", list(TRICKS))
def test_the_unpickler_refuses_every_way_to_code(tmp_path, trick, open_as_extension):
    marker = tmp_path / "code-ran"
    data = TRICKS[trick](marker)
    with pytest.raises(pickle.UnpicklingError):
        plain_value(data)
    assert not marker.exists()
    if trick != "persistent id":  # the real unpickler runs each of them: the threat is real
        try:
            pickle.loads(data)
        except Exception:
            pass
        assert marker.exists(), f"{trick}: not a pickle that runs code"


def test_plain_values_read_as_pytables_wrote_them():
    """What DeepLabCut's files hold: lists, tuples, dicts of text and numbers (old LONGs too)."""
    assert plain_value(b"(lp0\n(L0L\nVindex\np1\ntp2\na.") == [(0, "index")]
    assert plain_value(b"N.") is None
    assert plain_value(pickle.dumps({1: {"names": ["a", "b"]}}, 2)) == {1: {"names": ["a", "b"]}}
    with pytest.raises(CodeRefused, match=r"names Python code \((io|builtins)\.open\)"):
        plain_value(protocol_0_global(Path("x")))


# -- crafted files: every attribute the reader reads, and the ones it never reads -------------

#: (layout, node, attribute): the attributes of pandas' layouts that the reader reads.
READ_ATTRIBUTES = [
    ("table", "df_with_missing", "non_index_axes"),
    ("table", "df_with_missing", "info"),
    ("table", "df_with_missing", "index_cols"),
    ("table", "df_with_missing", "values_cols"),
    ("table", "df_with_missing/table", "values_block_0_kind"),
    ("fixed", "df_with_missing/axis0_level1", "name"),
    ("fixed", "df_with_missing/axis1", "name"),
]


@pytest.mark.parametrize("trick", list(TRICKS))
@pytest.mark.parametrize(("layout", "node", "attribute"), READ_ATTRIBUTES)
def test_a_pickle_in_an_attribute_that_is_read_is_refused(
    tmp_path, trick, layout, node, attribute, open_as_extension
):
    marker = tmp_path / "code-ran"
    path = labels_file(tmp_path, layout)
    with h5py.File(path, "r+") as file:
        file[node].attrs[attribute] = np.bytes_(TRICKS[trick](marker))
    with pytest.raises(LabelsError) as refused:
        read_dlc_labels(path)
    assert str(path) in str(refused.value)
    assert not marker.exists()


#: Forms in which a pickle can sit in an attribute that is never read: text, bytes, arrays.
UNREAD_FORMS = {
    "fixed bytes": lambda p: (np.bytes_(p), None),
    "vlen text": lambda p: (p.decode("latin-1"), h5py.string_dtype("utf-8")),
    "vlen bytes": lambda p: (p, h5py.string_dtype("ascii")),
    "array of fixed bytes": lambda p: (np.array([b"a", p]), None),
    "opaque bytes": lambda p: (np.void(p), None),
}


@pytest.mark.parametrize("form", list(UNREAD_FORMS))
@pytest.mark.parametrize("node", ["/", "df_with_missing", "df_with_missing/table"])
def test_a_pickle_anywhere_else_is_never_unpickled(tmp_path, form, node):
    """The issue's file: PyTables unpickled it as soon as pandas opened the group."""
    marker = tmp_path / "code-ran"
    path = labels_file(tmp_path)
    value, dtype = UNREAD_FORMS[form](long_base16_global(marker))
    with h5py.File(path, "r+") as file:
        file[node].attrs.create("metadata", value, dtype=dtype)
    labels = read_dlc_labels(path)
    assert labels.keypoints == ("snout", "tail")
    assert not marker.exists()


def object_column_file(tmp_path: Path, marker: Path) -> Path:
    """Labels with one more column of Python objects, one of them the marker's pickle."""
    folder, names = project(tmp_path)
    table = labels_table(names)
    table[("me", "note", "x")] = pd.Series([Marker(marker), "fine"], index=names, dtype=object)
    path = folder / "CollectedData_me.h5"
    with pytest.warns(pd.errors.PerformanceWarning):  # pandas says it pickles the column
        table.to_hdf(path, key="df_with_missing", mode="w", format="fixed")
    return path


def test_a_column_of_python_objects_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    path = object_column_file(tmp_path, marker)
    with pytest.raises(LabelsError, match=r"block1_values holds Python objects, not coordinates"):
        read_dlc_labels(path)
    assert not marker.exists()


def test_a_link_into_another_file_is_refused(tmp_path):
    path = labels_file(tmp_path, "fixed")
    with h5py.File(path, "r+") as file:
        del file["df_with_missing/block0_values"]
        file["df_with_missing/block0_values"] = h5py.ExternalLink("elsewhere.h5", "/x")
    with pytest.raises(LabelsError, match=r"block0_values is a link \(ExternalLink\)"):
        read_dlc_labels(path)


def issue_file(tmp_path: Path, marker: Path) -> Path:
    """The issue's file: the base-16 LONG pickle as a text attribute PyTables unpickles."""
    path = labels_file(tmp_path)
    with h5py.File(path, "r+") as file:
        text = long_base16_global(marker).decode("latin-1")
        file["df_with_missing"].attrs.create("note", text, dtype=h5py.string_dtype("ascii"))
    return path


def test_pandas_would_have_run_the_issues_file(tmp_path):
    """The threat is real: pandas' own reader (never used by the project) runs the pickle."""
    pytest.importorskip("tables")
    marker = tmp_path / "code-ran"
    path = issue_file(tmp_path, marker)
    try:
        pd.read_hdf(path)
    except Exception:
        pass
    assert marker.exists()


@pytest.mark.parametrize("craft", ["issue", "object column"])
def test_the_commands_run_nothing(tmp_path, craft):
    marker = tmp_path / "code-ran"
    path = (
        issue_file(tmp_path, marker) if craft == "issue" else object_column_file(tmp_path, marker)
    )
    images = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "utils" / "ImageAnalyzer.py"), str(path),
         "--model", str(tmp_path / "no-model")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert images.returncode == 2 and "Traceback" not in images.stderr, images.stderr
    expected = "no-model" if craft == "issue" else "holds Python objects"
    assert expected in images.stderr
    train = subprocess.run(
        [sys.executable, "-m", "deeplabstream.offline.training.train", "--labels", str(path),
         "--out", str(tmp_path / "model"), "--train-indices", "0-5"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert "Traceback" not in train.stderr, train.stderr
    # The issue's file reads (its two frames counted, then the made-up split is refused).
    expected = "beyond the 2 labeled ones" if craft == "issue" else "holds Python objects"
    assert train.returncode != 0 and expected in train.stderr
    assert not marker.exists()


# -- DeepLabCut's own files still read --------------------------------------------------------


def _tables(single: bool, three_column_index: bool) -> pd.DataFrame:
    levels = [["me"], ["snout", "tail"], ["x", "y"]]
    names = ["scorer", "bodyparts", "coords"]
    if not single:
        levels.insert(1, ["mouse1", "single"])
        names.insert(1, "individuals")
    columns = pd.MultiIndex.from_product(levels, names=names)
    values = np.arange(3 * len(columns), dtype=np.float64).reshape(3, -1)
    values[1, 2] = np.nan
    paths = [("labeled-data", "video", f"img{i}.png") for i in range(3)]
    index = pd.MultiIndex.from_tuples(paths) if three_column_index else ["/".join(p) for p in paths]
    return pd.DataFrame(values, index=index, columns=columns)


@pytest.mark.parametrize("layout", ["fixed", "table"])
@pytest.mark.parametrize("single", [True, False])
@pytest.mark.parametrize("three_column_index", [False, True])
def test_every_layout_pandas_writes_reads_as_pandas_reads_it(
    tmp_path, layout, single, three_column_index
):
    pytest.importorskip("tables")
    table = _tables(single, three_column_index)
    path = tmp_path / "CollectedData_me.h5"
    try:
        table.to_hdf(path, key="keypoints", mode="w", format=layout)
    except ValueError:  # pandas cannot write a 3-level index with multi-level columns as table
        pytest.skip("pandas writes no such file")
    from deeplabstream.offline.labels_hdf5 import read_labels_table

    pd.testing.assert_frame_equal(read_labels_table(path), pd.read_hdf(path))


@pytest.mark.parametrize("layout", ["fixed", "table"])
@pytest.mark.parametrize("name", ["dlc_testdata_v2.csv", "madlc_testdata.csv"])
def test_the_dlc_fixtures_as_h5_read_as_their_csv(tmp_path, layout, name):
    pytest.importorskip("tables")
    folder = shared_data("dlc-format-fixtures/labeled-data/video")
    csv = folder / name
    header = [0, 1, 2, 3] if name.startswith("ma") else [0, 1, 2]
    index = [0, 1, 2] if "_v2" in name else 0
    table = pd.read_csv(csv, header=header, index_col=index)
    copy = tmp_path / "labeled-data" / "video"
    copy.mkdir(parents=True)
    h5 = copy / csv.with_suffix(".h5").name
    try:
        table.to_hdf(h5, key="df_with_missing", mode="w", format=layout)
    except ValueError:
        pytest.skip("pandas writes no such file")
    (copy / name).write_bytes(csv.read_bytes())
    individual = "Animal1" if name.startswith("ma") else None
    from_h5, from_csv = (read_dlc_labels(copy / f, individual) for f in (h5.name, name))
    assert from_h5.keypoints == from_csv.keypoints
    assert from_h5.image_paths == from_csv.image_paths
    np.testing.assert_array_equal(from_h5.coordinates, from_csv.coordinates)
