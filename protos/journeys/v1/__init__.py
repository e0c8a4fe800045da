"""Generated code for the ``journeys.v1`` protobuf package; never edit by hand.

Regenerate with ``python protos/generate.py`` after changing a ``.proto`` file.
"""
