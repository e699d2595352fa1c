"""The desktop app: ``python app.py`` (installed: ``deeplabstream-app``).

A launcher kept where DeepLabStream's users look for it; the window is
:mod:`deeplabstream.app.desktop`, started by :mod:`deeplabstream.launch`, which takes Ctrl-C
before Qt is imported. ``scripts/setup.sh`` (or ``pip install .``) installs the package.
"""

if __name__ == "__main__":  # not in the spawned children, which import this file too
    import os
    import sys

    # This folder (the checkout's, beside settings.ini) never shadows a module of Python or of
    # the project: Python put it first on the path (src/deeplabstream/core/import_path.py).
    here = os.path.dirname(os.path.realpath(__file__))
    if sys.path and os.path.realpath(sys.path[0] or ".") == here:
        del sys.path[0]
    from deeplabstream.launch import desktop

    desktop()
