"""DeepLabCut's labels ``.h5`` read with h5py into a table: nothing in the file can run code.

docs/reliability.md (a crafted labels ``.h5``).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deeplabstream.core.errors import LabelsError

#: The node kinds of a numeric axis or block, as pandas names them (``kind`` attribute).
_NUMBER_KINDS = {"integer", "float"}


class _NoGlobals(pickle.Unpickler):
    """An unpickler that refuses every global: no class, function or module can be reached.

    Every opcode that reaches code goes through :meth:`find_class`; persistent ids are refused.
    """

    def find_class(self, module: str, name: str) -> Any:
        """Refuse: a labels file's attributes hold plain values only."""
        raise CodeRefused(f"it names Python code ({module}.{name}), which is never imported")

    def persistent_load(self, pid: Any) -> Any:
        """Refuse: a persistent id asks the reader for an object (pandas' files hold none)."""
        raise CodeRefused(f"it asks for an outside object ({pid!r}), which is refused")


class CodeRefused(pickle.UnpicklingError):
    """A pickle that names a class, function or module: refused, nothing imported or run."""


def plain_value(data: bytes) -> Any:
    """Return the plain value pickled in ``data`` (strings, numbers, lists, tuples, dicts).

    Raises CodeRefused when it names code (never imported), pickle.UnpicklingError when it is
    no whole pickle of plain values.
    """
    try:
        return _NoGlobals(io.BytesIO(data)).load()
    except pickle.UnpicklingError:
        raise
    except Exception as error:  # a malformed pickle raises several kinds; none ran any code
        raise pickle.UnpicklingError(f"not a pickle of plain values ({error})") from None


def read_labels_table(path: Path) -> pd.DataFrame:
    """Return the table of a DeepLabCut labels ``.h5`` (fixed or table layout), read with h5py.

    Raises LabelsError (naming the file and node) when h5py is missing, or the file is not
    HDF5, holds no or several pandas tables, or holds what labels never do.
    """
    try:
        import h5py
    except ImportError:
        csv_path = path.with_suffix(".csv")
        hint = f"use {csv_path.name} beside it" if csv_path.is_file() else "use the .csv"
        raise LabelsError(
            f"{path}: reading .h5 labels needs the 'h5py' package (pip install h5py), which is "
            f"not installed; {hint} DeepLabCut writes instead"
        ) from None
    try:
        with h5py.File(path, "r") as file:
            return _Reader(path, file).table()
    except OSError as error:
        raise LabelsError(f"{path}: cannot be read as HDF5: {error}") from None


class _Reader:
    """One open file: its pandas group found, its axes and values read into a DataFrame."""

    def __init__(self, path: Path, file: Any) -> None:
        self.path = path
        self.file = file

    def table(self) -> pd.DataFrame:
        """Return the file's one pandas table."""
        group = self._pandas_group()
        kind = self._text(group, "pandas_type")
        try:
            if kind == "frame":
                return self._fixed(group)
            if kind == "frame_table":
                return self._appendable(group)
        except (IndexError, TypeError, KeyError, AttributeError, ValueError) as error:
            # An attribute or array of another shape than pandas writes (a damaged file)
            raise self._error(
                group, f"is not laid out as pandas writes a table ({type(error).__name__}: "
                f"{error})"
            ) from None  # fmt: skip
        raise self._error(group, f"is a pandas {kind!r}, not a table of labels")

    # -- where the table is ---------------------------------------------------------------------

    def _pandas_group(self) -> Any:
        """Return the one group pandas wrote (``df_with_missing``, ``keypoints``, any key)."""
        import h5py

        found: list[Any] = []

        def look(name: str, node: Any) -> None:
            if isinstance(node, h5py.Group) and "pandas_type" in node.attrs:
                found.append(node)

        self.file.visititems(look)
        if not found:
            raise LabelsError(f"{self.path}: holds no pandas table (not a DeepLabCut labels file)")
        if len(found) > 1:
            names = ", ".join(node.name for node in found)
            raise LabelsError(
                f"{self.path}: holds several pandas tables ({names}); DeepLabCut writes one"
            )
        return found[0]

    def _node(self, group: Any, name: str) -> Any:
        """Return the dataset ``name`` of ``group``, never following a link out of the file."""
        import h5py

        link = group.get(name, getlink=True)
        if link is None:
            raise self._error(group, f"has no {name!r} (not a table pandas wrote)")
        if not isinstance(link, h5py.HardLink):
            raise self._error(group, f"/{name} is a link ({type(link).__name__}), not data")
        node = group[name]
        if not isinstance(node, h5py.Dataset):
            raise self._error(group, f"/{name} is not a dataset")
        return node

    # -- pandas' fixed layout -------------------------------------------------------------------

    def _fixed(self, group: Any) -> pd.DataFrame:
        """Read a ``frame`` of pandas' fixed layout: axis0 the columns, axis1 the rows."""
        columns = self._axis(group, "axis0")
        index = self._axis(group, "axis1")
        blocks = int(self._number(group, "nblocks"))
        parts = []
        for number in range(blocks):
            items = self._axis(group, f"block{number}_items")
            values = self._numbers(group, f"block{number}_values")
            if values.ndim != 2:
                raise self._error(group, f"/block{number}_values is not a 2-d array")
            node = self._node(group, f"block{number}_values")
            if not int(node.attrs.get("transposed", 0)):  # stored items x rows: make it rows
                values = values.T
            if values.shape != (len(index), len(items)):
                raise self._error(
                    group,
                    f"/block{number}_values has shape {values.shape}, expected "
                    f"{(len(index), len(items))}",
                )
            parts.append(pd.DataFrame(values, index=index, columns=items))
        if not parts:
            return pd.DataFrame(index=index, columns=columns, dtype=np.float64)
        return self._in_order(group, pd.concat(parts, axis=1), columns)

    def _axis(self, group: Any, name: str) -> pd.Index:
        """Return one axis of the fixed layout: ``regular`` (one array) or ``multi`` (levels)."""
        variety = self._text(group, f"{name}_variety")
        if variety == "regular":
            node = self._node(group, name)
            return pd.Index(self._labels(group, node), name=self._name(node))
        if variety != "multi":
            raise self._error(group, f"axis {name} of kind {variety!r}, expected regular or multi")
        levels, codes, names = [], [], []
        for level in range(int(self._number(group, f"{name}_nlevels"))):
            node = self._node(group, f"{name}_level{level}")
            levels.append(self._labels(group, node))
            names.append(self._name(node))
            codes.append(np.asarray(self._node(group, f"{name}_label{level}")[()], np.int64))
        try:
            return pd.MultiIndex(levels=levels, codes=codes, names=names)
        except ValueError as error:
            raise self._error(group, f"axis {name} is inconsistent: {error}") from None

    def _labels(self, group: Any, node: Any) -> list[Any]:
        """Return an axis' labels: text (``string``) or numbers; objects are refused."""
        kind = self._text(node, "kind")
        data = node[()]
        if kind == "string" and data.dtype.kind in "SU":
            encoding = self._text(group, "encoding") or "UTF-8"
            return [
                value.decode(encoding, "replace") if isinstance(value, bytes) else str(value)
                for value in np.asarray(data).reshape(-1)
            ]
        if kind in _NUMBER_KINDS and data.dtype.kind in "iuf":
            return list(np.asarray(data).reshape(-1))
        raise self._error(group, f"{node.name} holds labels of kind {kind!r}, not text or numbers")

    def _name(self, node: Any) -> str | None:
        """Return an axis' or level's name (PyTables pickles None as ``N.``)."""
        if "name" not in node.attrs:
            return None
        value = self._attribute(node, "name")
        return None if value is None else str(value)

    # -- pandas' table layout -------------------------------------------------------------------

    def _appendable(self, group: Any) -> pd.DataFrame:
        """Read a ``frame_table``: one compound dataset, the column labels in pickled attributes."""
        kind = self._text(group, "table_type")
        if kind != "appendable_frame":
            raise self._error(
                group,
                f"is a pandas table of type {kind!r}; DeepLabCut's labels are an "
                "appendable_frame (read the .csv DeepLabCut writes beside it instead)",
            )
        table = self._node(group, "table")
        fields = table.dtype.names or ()
        rows = table[()]
        index_columns = self._attribute(group, "index_cols")
        index_field = str(index_columns[0][1]) if index_columns else "index"
        if index_field not in fields:
            raise self._error(group, f"/table has no index column {index_field!r}")
        index = pd.Index(self._table_labels(group, table, index_field, rows[index_field]))
        info = self._attribute(group, "info") if "info" in group.attrs else {}
        axes = self._attribute(group, "non_index_axes") if "non_index_axes" in group.attrs else []
        column_info = info.get(axes[0][0], {}) if axes and isinstance(info, dict) else {}
        multi = isinstance(column_info, dict) and column_info.get("type") == "MultiIndex"
        names = column_info.get("names") if isinstance(column_info, dict) else None
        parts = []
        for field in self._attribute(group, "values_cols"):
            field = str(field)
            if field not in fields:
                raise self._error(group, f"/table has no column {field!r}")
            values = np.asarray(rows[field])
            if values.dtype.kind not in "iuf":
                raise self._error(
                    group, f"/table column {field!r} holds {values.dtype}, not coordinates"
                )
            labels = (
                self._attribute(table, f"{field}_kind")
                if f"{field}_kind" in table.attrs
                else [field]
            )
            values = values.reshape(len(index), -1)
            if values.shape[1] != len(labels):
                raise self._error(
                    group, f"/table column {field!r} has {values.shape[1]} values per row, "
                    f"but {len(labels)} labels"
                )  # fmt: skip
            columns = pd.MultiIndex.from_tuples(labels) if multi else pd.Index(labels)
            parts.append(pd.DataFrame(values.astype(np.float64), index=index, columns=columns))
        if not parts:
            raise self._error(group, "holds no coordinates")
        frame = pd.concat(parts, axis=1)
        if names is not None and len(names) == frame.columns.nlevels:
            frame.columns = frame.columns.set_names([str(name) for name in names])
        if axes:
            order = list(axes[0][1])
            ordered = pd.MultiIndex.from_tuples(order) if multi else pd.Index(order)
            frame = self._in_order(group, frame, ordered.set_names(frame.columns.names))
        return frame

    def _table_labels(self, group: Any, table: Any, field: str, data: np.ndarray) -> list[Any]:
        """Return the row labels of a table's index column (text or numbers)."""
        kind = self._text(table, f"{field}_kind") if f"{field}_kind" in table.attrs else ""
        if kind == "string" and data.dtype.kind in "SU":
            encoding = self._text(group, "encoding") or "UTF-8"
            return [
                value.decode(encoding, "replace") if isinstance(value, bytes) else str(value)
                for value in data.reshape(-1)
            ]
        if kind in _NUMBER_KINDS and data.dtype.kind in "iuf":
            return list(data.reshape(-1))
        raise self._error(group, f"/table index of kind {kind!r}, not text or numbers")

    # -- values and attributes ------------------------------------------------------------------

    def _in_order(self, group: Any, frame: pd.DataFrame, columns: pd.Index) -> pd.DataFrame:
        """Return ``frame`` with its columns in the order the file lists them."""
        if len(columns) != len(frame.columns) or not columns.isin(frame.columns).all():
            raise self._error(group, "its blocks do not hold the columns it lists")
        return frame.reindex(columns=columns)

    def _numbers(self, group: Any, name: str) -> np.ndarray:
        """Return a dataset of numbers; anything else (Python objects, text) is refused."""
        node = self._node(group, name)
        if node.dtype.kind not in "iuf":
            what = "Python objects" if node.dtype.kind in "OV" else str(node.dtype)
            raise self._error(group, f"/{name} holds {what}, not coordinates")
        return np.asarray(node[()], dtype=np.float64)

    def _attribute(self, node: Any, key: str) -> Any:
        """Return an attribute as PyTables wrote it: text, a number, or a plain pickled value."""
        try:
            value = node.attrs[key]
        except (OSError, TypeError, ValueError, KeyError) as error:
            raise self._error(node, f"attribute {key!r} cannot be read ({error})") from None
        if isinstance(value, np.bytes_ | bytes):
            data = bytes(value)
            try:
                return plain_value(data)
            except CodeRefused as error:
                raise self._error(node, f"attribute {key!r} is refused: {error}") from None
            except pickle.UnpicklingError:  # no pickle: text, as PyTables keeps it
                return data.decode("utf-8", "replace")
        if isinstance(value, np.generic):
            return value.item()
        return value

    def _text(self, node: Any, key: str) -> str:
        """Return a text attribute (pandas' own ``kind``, ``encoding`` ...); '' when absent."""
        if key not in node.attrs:
            return ""
        value = node.attrs[key]
        if isinstance(value, np.bytes_ | bytes):
            return bytes(value).decode("utf-8", "replace")
        return value if isinstance(value, str) else ""

    def _number(self, node: Any, key: str) -> float:
        value = node.attrs.get(key)
        if not isinstance(value, np.integer | np.floating | int | float):
            raise self._error(node, f"attribute {key!r} is not a number")
        return float(value)

    def _error(self, node: Any, what: str) -> LabelsError:
        return LabelsError(f"{self.path}: {node.name} {what}")
