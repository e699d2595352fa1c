"""``deeplabstream-verify``: a session checked against its own recording, frame by frame.

The session's recordings are analysed again offline, every frame, with the session's model,
settings and experiment; the live keypoints and events are compared with that reference and
every difference is put down to its cause (:mod:`.verification`).
"""
