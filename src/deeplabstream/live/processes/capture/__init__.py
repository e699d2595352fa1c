"""The capture process: one per camera, frames into its ring (and companion streams)."""
