"""The desktop app: ``python app.py`` (installed: ``deeplabstream-app``).

A launcher kept where DeepLabStream's users look for it; the window is
:mod:`deeplabstream.app.desktop`. ``scripts/setup.sh`` (or ``pip install .``) installs the package.
"""

from deeplabstream.app.desktop import run

if __name__ == "__main__":
    run()
