"""Experiments, by role: the lab API, the engine that runs it, and the config language.

The lab API is what a lab's code imports (``base``, ``observation``, ``triggers``, ``actions``,
``trial``, ``options``, ``prediction``, ``events``, ``registry``, ``examples``; docs/experiments.md
is the guide); :mod:`experiments.engine` is the runtime that holds a lab's experiment;
:mod:`experiments.config` the experiments written as ini files. The roles: docs/architecture.md.
"""
