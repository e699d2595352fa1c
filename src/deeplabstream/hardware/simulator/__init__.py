"""The simulated arena: a mouse simulator that renders frames and knows the true pose."""
