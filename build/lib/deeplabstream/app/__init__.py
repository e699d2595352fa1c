"""The app: the command line, the desktop window and what they draw."""
