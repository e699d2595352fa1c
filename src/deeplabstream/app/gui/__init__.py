"""The Qt user interface: the live preview of DeepLabStream.py (and, later, app.py's window)."""
