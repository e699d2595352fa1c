"""The pose files of a session: written as the stream runs, read back, finished, drawn."""
