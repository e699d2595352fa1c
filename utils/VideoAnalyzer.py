"""Offline replay of recorded videos: ``python utils/VideoAnalyzer.py --help``.

Installed: ``deeplabstream-replay``. A launcher kept where DeepLabStream's users look for it; the
command is :mod:`deeplabstream.offline.replay.command`.
"""

from deeplabstream.offline.replay.command import run

if __name__ == "__main__":
    run()
