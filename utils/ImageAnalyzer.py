"""Predict and score labelled images: ``python utils/ImageAnalyzer.py --help``.

Installed: ``deeplabstream-images``. A launcher beside ``VideoAnalyzer.py``; the command is
:mod:`deeplabstream.offline.replay.image_command`.
"""

from deeplabstream.offline.replay.image_command import run

if __name__ == "__main__":
    run()
