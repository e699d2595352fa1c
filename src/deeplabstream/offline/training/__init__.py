"""Training, offline and never on the live path: pose models and behaviour classifiers."""
