"""Moving frames between processes: shared-memory rings, record pipes and frame readers."""
