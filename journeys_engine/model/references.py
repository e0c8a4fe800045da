"""What a condition refers to: audiences and computed traits by id."""

from __future__ import annotations

import re

from journeys_engine.model.definitions import DefinitionKind
from journeys_engine.model.journey import Condition

__all__ = ["condition_references"]

_QUOTED = r"""(?:'([^']*)'|"([^"]*)"|\u2018([^\u2019]*)\u2019|\u201c([^\u201d]*)\u201d)"""
_REFERENCE = re.compile(r"\b(audience|computed_trait)\s*\(\s*" + _QUOTED + r"\s*\)")
_KINDS = {"audience": DefinitionKind.AUDIENCE, "computed_trait": DefinitionKind.COMPUTED_TRAIT}


def condition_references(condition: Condition) -> list[tuple[DefinitionKind, str]]:
    """The ``audience('ID')`` and ``computed_trait('ID')`` references, in order, once each."""
    found: list[tuple[DefinitionKind, str]] = []
    for match in _REFERENCE.finditer(condition.text):
        ref_id = next(g for g in match.groups()[1:] if g is not None)
        ref = (_KINDS[match.group(1)], ref_id)
        if ref not in found:
            found.append(ref)
    return found
