"""Release 0.6.0's path of :class:`ExperimentRuntime`, kept until release 0.8.0.

Since release 0.7.0 the runtime is ``deeplabstream.experiments.engine.runtime``.
"""

import warnings

from deeplabstream.experiments.engine.runtime import ExperimentRuntime

warnings.warn(
    "deeplabstream.experiments.runtime is deeplabstream.experiments.engine.runtime since release "
    "0.7.0; the old path goes in release 0.8.0",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["ExperimentRuntime"]
