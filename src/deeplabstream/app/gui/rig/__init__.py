"""The Rig tab's parts: the edited settings file, its check, and one box per part of the rig."""
