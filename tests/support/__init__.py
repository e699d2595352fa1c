"""Helpers the tests share: paths, files and videos, running the command line."""
