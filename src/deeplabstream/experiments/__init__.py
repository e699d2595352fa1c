"""Experiments, by role: the lab API, the engine that runs it, and the config language.

**The lab API** (what a lab's code imports; docs/experiments.md is the guide):

* :mod:`experiments.base`: :class:`~experiments.base.Experiment`, the class a lab subclasses:
  hooks ``on_start``, ``on_update``, ``on_trial_end``; calls ``add_trigger``,
  ``rose``/``fell``/``is_true``, ``start_trial``, ``end_trial``, ``end_session``, ``log``.
* :mod:`experiments.observation`: :class:`~experiments.observation.Observation` (one camera's
  keypoints for one analysed frame, stamped with the frame's own time) and the likelihood filter.
* :mod:`experiments.triggers`: small composable conditions with one interface
  (``update(obs) -> bool``, ``reset()``, ``describe()``, ``shapes()``) and
  :func:`~experiments.triggers.make_trigger` to build them from config strings.
* :mod:`experiments.actions`: :class:`~experiments.actions.Action` (``on``, ``off``, ``pulse``,
  ``pattern``); :mod:`experiments.trial`: a trial and the experiment's states;
  :mod:`experiments.options`: the options of ``super().__init__``; :mod:`experiments.prediction`:
  forward prediction; :mod:`experiments.events`: the event log (``events.csv``).
* :mod:`experiments.registry`: :func:`~experiments.registry.load_experiment` by config name, class
  or path; :mod:`experiments.examples`: an experiment written in Python.

**The engine** (:mod:`experiments.engine`): the runtime that holds a lab's experiment and answers
its calls: the triggers' states, the trial machine, what each event names.

**The config language** (:mod:`experiments.config`): experiments without code from an ini file,
and the window's edits of one.

Experiments are pure logic: observations in, actions out, time from the frames only.
"""
