"""The processes of a session, a folder per role: capture/, recording/, analysis/ (the worker).

Every message that crosses a process boundary is a dataclass in :mod:`live.processes.messages`.
"""
