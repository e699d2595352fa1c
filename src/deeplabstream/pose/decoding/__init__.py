"""Network outputs to keypoints: each framework's decoding rules."""
