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

# Ctrl-C and SIGTERM are taken before the command's imports (seconds), as deeplabstream.launch
# does for the installed command: said and honoured once it looks, never a traceback.
from deeplabstream.app.stop_requests import take_stop_signals  # noqa: E402 - path made safe

take_stop_signals()
from deeplabstream.offline.verify.command import run  # noqa: E402 - after the signals

run()
