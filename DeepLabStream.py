"""Headless checks of a rig: ``python DeepLabStream.py --help`` (installed: ``deeplabstream``).

A launcher kept where DeepLabStream's users look for it; the command is
:mod:`deeplabstream.app.headless`. ``scripts/setup.sh`` (or ``pip install .``) installs the package.
"""

from deeplabstream.app.headless import run

if __name__ == "__main__":
    run()
