"""The bottom layer: the one clock, frame stamps, statistics, the settings schema, the exceptions.

Also the plugin registry, comment-keeping ini editing, the pinhole camera model and the process
helpers (control pipes, lifetimes, logs, priorities, device locks).

Nothing here imports another package of the project (see docs/architecture.md).
"""
