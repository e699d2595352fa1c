"""The desktop app: ``python app.py`` (installed: ``deeplabstream-app``).

A launcher kept where DeepLabStream's users look for it; the window is
:mod:`deeplabstream.app.desktop`, started by :mod:`deeplabstream.launch`, which takes Ctrl-C
before Qt is imported. ``scripts/setup.sh`` (or ``pip install .``) installs the package.
"""

if __name__ == "__main__":  # not in the spawned children, which import this file too
    from deeplabstream.launch import desktop

    desktop()
