"""Experiment logic: what a trigger sees at each pose update, and the triggers themselves.

* :mod:`experiments.observation`: :class:`~experiments.observation.Observation` (one camera's
  keypoints for one analysed frame, stamped with the frame's own time),
  :class:`~experiments.observation.KeypointFilter` (likelihood threshold with a "missing" or
  "hold" policy), and :func:`~experiments.observation.pair_nearest` for several cameras.
* :mod:`experiments.triggers`: small composable conditions with one interface
  (``update(obs) -> bool``, ``reset()``, ``describe()``, ``shapes()``) and
  :func:`~experiments.triggers.make_trigger` to build them from config strings.
"""
