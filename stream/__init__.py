"""Moving frames between processes: capture processes, shared-memory rings, record pipes."""
