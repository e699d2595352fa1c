"""What a session writes: raw video, frames tables, the session folder and the pose files.

Also the exports and streams of poses and events: NWB, SLEAP ``.slp``, Lab Streaming Layer.
Each output of the poses is a plugin (``outputs.interface``: the kind's interface and registry).
"""
