"""Training the bundled model on simulated arena frames: offline, never on the live path."""
