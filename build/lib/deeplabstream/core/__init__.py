"""The bottom layer: clocks, frame stamps, statistics, the settings schema and process helpers.

Nothing here imports another package of the project (see docs/architecture.md).
"""
