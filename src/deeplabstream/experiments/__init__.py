"""Experiment logic: what a trigger sees at each pose update, and the triggers themselves.

* :mod:`experiments.observation`: :class:`~experiments.observation.Observation` (one camera's
  keypoints for one analysed frame, stamped with the frame's own time),
  :class:`~experiments.observation.KeypointFilter` (likelihood threshold with a "missing" or
  "hold" policy), and :func:`~experiments.observation.pair_nearest` for several cameras.
* :mod:`experiments.triggers`: small composable conditions with one interface
  (``update(obs) -> bool``, ``reset()``, ``describe()``, ``shapes()``) and
  :func:`~experiments.triggers.make_trigger` to build them from config strings.
* :mod:`experiments.actions`: :class:`~experiments.actions.Action`, what an experiment asks a
  stimulation device to do (``on``, ``off``, ``pulse``, ``pattern``).
* :mod:`experiments.base`: :class:`~experiments.base.Experiment`, the class a lab subclasses: a
  short surface (hooks ``on_start``, ``on_update``, ``on_trial_end``; calls ``add_trigger``,
  ``rose``/``fell``/``is_true``, ``start_trial``, ``end_trial``, ``end_session``, ``log``) over
  its machinery, kept in one private attribute: named triggers, the trial machine, the event
  log and prediction.
* :mod:`experiments.trials`: :class:`~experiments.trials.TrialMachine`, the trial machine:
  states, trials (maximum count, inter-trial interval, duration), session duration,
  pause/resume, and switching held outputs off.
* :mod:`experiments.prediction`: forward prediction (latency compensation): each keypoint
  extrapolated to the moment the command is written, by constant velocity or a Kalman filter,
  with a lead that follows the measured latency.
* :mod:`experiments.events`: :class:`~experiments.events.EventLog` and ``events.csv``;
  :mod:`experiments.recording`: :class:`~experiments.recording.EventRecorder`, what each event
  of an experiment names (frame, keypoint positions, animal).
* :mod:`experiments.config`: experiments without code, from a config file (``*.ini``).
* :mod:`experiments.config_edit`: the window's edits of a config (regions, their actions,
  keypoint names), keeping the rest of the file as written.
* :mod:`experiments.registry`: :data:`~experiments.registry.EXPERIMENTS`, the experiments'
  registry, and :func:`~experiments.registry.load_experiment` by config name (the lab's
  ``experiments/`` folder beside the settings file, then the shipped ``configs/``),
  ``module:Class`` (shipped, installed, or of the lab's folder) or path.
* :mod:`experiments.examples`: an experiment written in Python.

docs/experiments.md is the guide. Experiments are pure logic: observations in, actions out, time
from the frames only.
"""
