"""Send-step keys (SPEC §4).

``j_o_`` + slug(journey name) + ``__`` + slug(step name) + ``_`` + 6 random
characters of ``[a-z0-9]``. When that would pass the key limit, the step slug is
cut first, then the journey slug; a cut slug loses its trailing ``_`` so that it
stays a slug.
"""

from __future__ import annotations

import re

from journeys_engine.ids import random_suffix

__all__ = ["KEY_PATTERN", "SUFFIX_LENGTH", "make_key", "slug"]

SUFFIX_LENGTH = 6
_PREFIX = "j_o_"
_OTHER = re.compile(r"[^a-z0-9]+")
KEY_PATTERN = re.compile(r"j_o_[a-z0-9_]+__[a-z0-9_]+_[a-z0-9]{6}")


def slug(name: str, empty: str) -> str:
    """Lower-cases, turns each run of other characters into ``_``, strips ``_``.

    An empty result becomes ``empty``.
    """
    return _OTHER.sub("_", name.lower()).strip("_") or empty


def make_key(journey_name: str, step_name: str, *, max_length: int, suffix: str = "") -> str:
    """The key for a step, cut to ``max_length``.

    Args:
        journey_name: The journey's name.
        step_name: The step's name.
        max_length: Longest key allowed.
        suffix: The 6 random characters; fresh ones when empty.
    """
    suffix = suffix or random_suffix(SUFFIX_LENGTH)
    journey_slug = slug(journey_name, "journey")
    step_slug = slug(step_name, "step")
    fixed = len(_PREFIX) + len("__") + len("_") + len(suffix)
    room = max_length - fixed
    if len(journey_slug) + len(step_slug) > room:
        step_slug = step_slug[: max(1, room - len(journey_slug))].rstrip("_") or "step"
    if len(journey_slug) + len(step_slug) > room:
        journey_slug = journey_slug[: max(1, room - len(step_slug))].rstrip("_") or "journey"
    return f"{_PREFIX}{journey_slug}__{step_slug}_{suffix}"
