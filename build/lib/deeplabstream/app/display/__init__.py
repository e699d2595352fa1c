"""Drawing for people: pose and trigger overlays on display copies of frames, and screen checks."""
