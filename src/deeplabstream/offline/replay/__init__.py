"""Offline replay: recorded videos through the live pipeline (``utils/VideoAnalyzer.py``).

- :mod:`offline.replay.videos`: which files to replay; reading a video's frame count and rate.
- :mod:`offline.replay.job`: the options of a replay and its result (small, picklable).
- :mod:`offline.replay.session`: one video through :class:`live.session.live.LiveSession`, as live.
- the annotated video: the `annotated_video` output (:mod:`outputs.annotated_video`), with progress.
- :mod:`offline.replay.batch`: many videos, in local processes or as Ray tasks.
- :mod:`offline.replay.progress`: the progress bars.
- :mod:`offline.replay.images`: labelled images predicted with the model's image pre-processing and
  scored (``utils/ImageAnalyzer.py``).
"""
