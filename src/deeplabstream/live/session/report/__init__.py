"""The session's report: watching a running session and saying what it saw, in one place.

``session_report.SessionReport`` is the entry ``LiveSession`` talks to; its parts, one noun each:
``news`` (the processes' news), ``disk``, ``camera_loss`` (a device camera gone silent and
``ON_CAMERA_LOST``), ``delivery`` (a paced camera below its FRAMERATE, or stalled), ``stalls``
(an analysis that gives no pose), ``health`` (the deadline and the verdict), ``truncation`` (a
video cut short), ``figures`` (the live figures), ``rates`` (rates on the camera's clock),
``session_json`` (filling ``session.json``), ``summary`` (the end-of-session summary) and
``events`` (what the user hears).
"""
