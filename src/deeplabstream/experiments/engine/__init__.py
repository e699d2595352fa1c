"""What runs a lab's experiment: the runtime and its parts.

:class:`~experiments.engine.runtime.ExperimentRuntime` holds the lab's
:class:`~experiments.base.Experiment` and answers its calls with the registered triggers' states
(:mod:`~experiments.engine.trigger_states`), the trial machine (:mod:`~experiments.engine.trials`)
and what each event names (:mod:`~experiments.engine.recording`). A lab imports only the runtime
from here, to run an experiment by hand (docs/experiments.md).
"""
