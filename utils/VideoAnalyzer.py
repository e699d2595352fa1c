"""Offline replay of recorded videos: ``python utils/VideoAnalyzer.py --help``.

Installed: ``deeplabstream-replay``. A launcher kept where DeepLabStream's users look for it; the
command is :mod:`deeplabstream.offline.replay.command`, started by :mod:`deeplabstream.launch`,
which takes Ctrl-C before the command's imports.
"""

if __name__ == "__main__":  # not in the spawned children, which import this file too
    from deeplabstream.launch import replay

    replay()
