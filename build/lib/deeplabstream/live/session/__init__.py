"""One session: cameras, recordings, analysis, watchdogs and ``session.json``."""
