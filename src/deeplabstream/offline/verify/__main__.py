"""``python -m deeplabstream.offline.verify SESSION_FOLDER``: the window's Verify button runs it.

As the ``deeplabstream-verify`` command: the current folder (a session folder, holding what
anyone put there) is taken off the module path before anything else is imported, so that no
``json.py`` or ``pickle.py`` of it runs. Python itself imports a few modules (``runpy``'s)
before this file runs; run ``python -P -m ...`` or the command to leave out those too.
"""

import os
import sys

# Only sys and os, which Python imported before anything of the current folder could be.
_here = os.path.realpath(os.getcwd())
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != _here]

from deeplabstream.offline.verify.command import run  # noqa: E402 - after the path is safe

run()
