"""The config language: experiments without code, written as an ini file.

:mod:`~experiments.config.parse` reads and checks a config and builds its experiment;
:mod:`~experiments.config.edit` is the window's edits of one (regions, their actions, keypoint
names), keeping the rest of the file as written. docs/experiments.md is the language's guide.
"""
