"""The processes of a session, a folder per role: capture/, recording/, analysis/ (the worker)."""
