"""The processes of a session: capture, recorder, inference (with the experiment's dispatch).

Every message that crosses a process boundary is a dataclass in :mod:`live.processes.messages`.
"""
