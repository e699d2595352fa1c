"""What runs a lab's experiment: the runtime and its parts.

:class:`~experiments.engine.runtime.ExperimentRuntime` runs one lab
:class:`~experiments.base.Experiment`; a lab imports only it from here, to run an experiment by
hand (docs/experiments.md). Its design: docs/experiments-internals.md.
"""
