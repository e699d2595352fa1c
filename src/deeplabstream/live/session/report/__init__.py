"""The session's report: watching a running session and saying what it saw, in one place.

``session_report.SessionReport`` is the entry ``LiveSession`` talks to; the other modules are
its parts, one noun each.
"""
