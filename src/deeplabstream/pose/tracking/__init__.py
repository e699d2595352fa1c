"""Identities of several animals across frames: the live tracker and its offline switch counts."""
