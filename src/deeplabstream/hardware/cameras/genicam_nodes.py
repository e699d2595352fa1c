"""A GenICam camera's features (pylon's node map), read and set with refusals that name the key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deeplabstream.core.errors import CameraError
from deeplabstream.hardware.cameras.base import short_number


class NodeMap:
    """The features of one open camera (pylon's ``InstantCamera``); ``label`` names it."""

    def __init__(self, camera: Any, genicam: Any, label: Callable[[], str]) -> None:
        self._camera = camera
        self._genicam = genicam
        self._name = label

    @property
    def label(self) -> str:
        """The camera, as messages name it."""
        return self._name()

    def param(self, name: str) -> Any:
        """Return the camera's parameter ``name``, or None when this camera has no such feature."""
        node = self._camera.GetNodeMap().GetNode(name)
        if node is None or not self._genicam.IsAvailable(node):
            return None
        return node

    def first_param(self, names: tuple[str, ...]) -> Any:
        """Return the first of ``names`` the camera has (None: none of them)."""
        for name in names:
            param = self.param(name)
            if param is not None:
                return param
        return None

    def readable(self, param: Any) -> bool:
        """Return True when ``param`` can be read now."""
        return bool(self._genicam.IsReadable(param))

    def writable(self, param: Any) -> bool:
        """Return True when ``param`` can be set now."""
        return bool(self._genicam.IsWritable(param))

    def read_number(self, names: tuple[str, ...]) -> float | None:
        """Return the value of the first readable feature of ``names`` (None: none)."""
        param = self.first_param(names)
        if param is None or not self.readable(param):
            return None
        return float(param.Value)

    def set_number(self, names: tuple[str, ...], value: float, key: str, unit: str) -> None:
        """Set an integer or float feature, refusing values outside the camera's range.

        Every node of the feature's names is set (the emulator keeps ``ExposureTimeAbs`` beside
        ``ExposureTime``), so the value must suit them all.
        """
        genicam = self._genicam
        limits = self.limits(names)
        if limits is None:
            raise CameraError(
                f"{self.label}: {key} cannot be set: the camera has no writable {names[0]}"
            )
        params = limits[0]
        low = max(p.GetMin() for p in params)
        high = min(p.GetMax() for p in params)
        is_int = isinstance(low, int) and not isinstance(low, bool)
        step = int(params[0].GetInc()) if is_int else None
        allowed = f"{short_number(low)} to {short_number(high)} {unit}".rstrip()
        if step and step > 1:
            allowed += f" in steps of {step}"
        context = range_context(key, self.applied_context())
        misaligned = is_int and step and (int(value) - low) % step
        if not low <= value <= high or misaligned or (is_int and value != int(value)):
            raise CameraError(
                f"{self.label}: {key} = {short_number(value)} is refused: the camera allows "
                f"{allowed}{context}"
            )
        for param in params:
            try:
                param.Value = int(value) if is_int else float(value)
            except genicam.GenericException as error:
                raise CameraError(
                    f"{self.label}: {key} = {short_number(value)} is refused "
                    f"({first_line(error)}); the camera allows {allowed}{context}"
                ) from None

    def set_enum(self, names: tuple[str, ...], value: str, key: str, required: bool = True) -> None:
        """Set an enumeration feature to ``value``, refused (naming ``key``) when not offered.

        With ``required`` False a camera without the feature or the value is left as it is.
        """
        genicam = self._genicam
        param = self.first_param(names)
        if param is None or not self.writable(param):
            if required:
                raise CameraError(
                    f"{self.label}: {key} cannot be set: the camera has no writable {names[0]}"
                )
            return
        offered = tuple(param.Symbolics)
        if value not in offered:
            if not required:
                return
            raise CameraError(
                f"{self.label}: {key}: the camera's {names[0]} has no {value}; it offers "
                f"{', '.join(offered)}"
            )
        try:
            param.Value = value
        except genicam.GenericException as error:
            raise CameraError(
                f"{self.label}: {key}: {names[0]} = {value} is refused: {first_line(error)}"
            ) from None

    def set_bool(self, names: tuple[str, ...], value: bool) -> None:
        """Set a boolean feature where the camera has it writable."""
        param = self.first_param(names)
        if param is not None and self.writable(param):
            param.Value = value

    def applied_context(self) -> dict[str, Any]:
        """Return the keys a range depends on, as the camera has them now."""
        return {
            "OFFSET_X": self.read_number(("OffsetX",)),
            "OFFSET_Y": self.read_number(("OffsetY",)),
            "WIDTH": self.read_number(("Width",)),
            "HEIGHT": self.read_number(("Height",)),
            "EXPOSURE": self.read_number(("ExposureTime", "ExposureTimeAbs")),
        }

    def limits(
        self, names: tuple[str, ...], writable: bool = True
    ) -> tuple[list[Any], float, float, float] | None:
        """Return the writable features of ``names``, the range all accept, its step; or None."""
        usable = self.writable if writable else self.readable
        params = [p for p in (self.param(n) for n in names) if p is not None and usable(p)]
        if not params:
            return None
        low = max(p.GetMin() for p in params)
        high = min(p.GetMax() for p in params)
        first = params[0]
        is_int = isinstance(low, int) and not isinstance(low, bool)
        # A float feature often has no increment: any value within the range is taken.
        step = float(first.GetInc()) if is_int or first.HasInc() else 0.0
        return params, float(low), float(high), step


def range_context(key: str, values: dict[str, Any]) -> str:
    """Say what the allowed range depends on, so the message explains an odd-looking limit."""
    depends = {
        "WIDTH": ("OFFSET_X",),
        "HEIGHT": ("OFFSET_Y",),
        "OFFSET_X": ("WIDTH",),
        "OFFSET_Y": ("HEIGHT",),
        "FRAMERATE": ("WIDTH", "HEIGHT", "EXPOSURE"),
    }.get(key, ())
    parts = [
        f"{name} = {short_number(values[name])}" for name in depends if values.get(name) is not None
    ]
    return f" (with {', '.join(parts)})" if parts else ""


def first_line(error: BaseException) -> str:
    """Return the readable part of a pylon message (it ends with the C++ file and line)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split(" : ")[0]
