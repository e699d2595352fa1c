"""Self-tests of a rig: the latency test measured by the stimulus board (docs/latency-test.md)."""
