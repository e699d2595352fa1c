"""``python -m deeplabstream.offline.verify SESSION_FOLDER``: the window's Verify button runs it."""

from deeplabstream.offline.verify.command import run

run()
