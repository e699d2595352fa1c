"""The bottom layer: clock, frame stamps, statistics, settings schema, exceptions, plugins.

Also ini editing, the pinhole model and process helpers; nothing here imports another package.
"""
