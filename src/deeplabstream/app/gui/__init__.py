"""The Qt user interface: app.py's main window with its panels; DeepLabStream.py's live preview."""
