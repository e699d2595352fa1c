"""``deeplabstream-verify``: a session checked against its own recording, frame by frame.

Design: docs/verify.md, "offline.verify".
"""
