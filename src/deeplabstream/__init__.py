"""DeepLabStream: closed-loop behavioural experiments in real time."""

#: The release this code is (CHANGELOG.md: what each release added, changed, deprecated and
#: removed). pyproject.toml takes the package's version from here; the program reads it here
#: too (``--version``, ``session.json``), so a checkout installed in place before a release
#: still says which release its code is.
__version__ = "0.8.0"
