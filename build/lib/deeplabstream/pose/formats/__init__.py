"""Model formats: each framework's files read into one model description."""
