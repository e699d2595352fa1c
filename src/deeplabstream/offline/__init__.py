"""Offline tools: replay of recorded videos, training, the reference generators.

``labels`` (DeepLabCut label files) serves two of them, replay and training, which do not import
each other.
"""
