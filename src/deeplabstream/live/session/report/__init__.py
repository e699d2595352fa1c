"""The session's report: watching a running session and saying what it saw, in one place."""
