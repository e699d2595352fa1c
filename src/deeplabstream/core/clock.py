"""Release 0.7.0's path of the host clock, kept until release 0.9.0: ``core.timing`` since 0.8.0."""

from deeplabstream.core.plugins.notices import deprecated
from deeplabstream.core.timing import host_now_ns, precise_timers

deprecated(
    "deeplabstream.core.clock is deeplabstream.core.timing since release 0.8.0: "
    "write `from deeplabstream.core.timing import host_now_ns`",
    removed_in="0.9.0",
)

__all__ = ["host_now_ns", "precise_timers"]
