"""Headless checks of a rig: ``python DeepLabStream.py --help`` (installed: ``deeplabstream``).

A launcher kept where DeepLabStream's users look for it; the command is
:mod:`deeplabstream.app.headless`, started by :mod:`deeplabstream.launch`, which takes Ctrl-C
before the command's imports. ``scripts/setup.sh`` (or ``pip install .``) installs the package.
"""

if __name__ == "__main__":  # not in the spawned children, which import this file too
    from deeplabstream.launch import headless

    headless()
