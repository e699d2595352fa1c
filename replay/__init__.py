"""Offline replay: recorded videos through the live pipeline (``utils/VideoAnalyzer.py``).

- :mod:`replay.videos`: which files to replay; reading a video's frame count and rate.
- :mod:`replay.job`: the options of a replay and its result (small, picklable).
- :mod:`replay.session`: one video through :class:`session.live.LiveSession`, as live.
- :mod:`replay.annotate`: the annotated video, drawn from the pose file after the run.
- :mod:`replay.batch`: many videos, in local processes or as Ray tasks.
- :mod:`replay.progress`: the progress bars.
- :mod:`replay.images`: labelled images predicted with the model's image pre-processing and
  scored (``utils/ImageAnalyzer.py``).
"""
