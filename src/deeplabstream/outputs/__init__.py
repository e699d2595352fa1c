"""What a session writes: video, frames tables, the session folder, pose files and their exports.

Each output of the poses is a plugin (``outputs.interface``).
"""
