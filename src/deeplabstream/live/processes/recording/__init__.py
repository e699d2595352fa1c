"""The recorder process: one per camera, the ring's frames into the video and its table."""
