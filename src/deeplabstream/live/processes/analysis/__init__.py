"""The inference worker: the pose models on each frame, then the experiment (decide -> send)."""
