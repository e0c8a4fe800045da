"""What a condition refers to: audiences and computed traits by id."""

from __future__ import annotations

from collections.abc import Iterator

from journeys_engine.conditions.ast import (
    And,
    AudienceRef,
    BoolNode,
    Comparison,
    ComputedTraitRef,
    Not,
    Or,
)
from journeys_engine.conditions.parser import parse_condition
from journeys_engine.errors import ConditionError
from journeys_engine.model.definitions import DefinitionKind
from journeys_engine.model.journey import Condition

__all__ = ["condition_references", "tree_references"]


def tree_references(node: BoolNode) -> Iterator[tuple[DefinitionKind, str]]:
    """Every ``audience('ID')`` and ``computed_trait('ID')`` of a tree, in order."""
    match node:
        case And() | Or():
            for item in node.items:
                yield from tree_references(item)
        case Not():
            yield from tree_references(node.item)
        case AudienceRef():
            yield DefinitionKind.AUDIENCE, node.id
        case Comparison():
            if isinstance(node.left, ComputedTraitRef):
                yield DefinitionKind.COMPUTED_TRAIT, node.left.id


def condition_references(condition: Condition) -> list[tuple[DefinitionKind, str]]:
    """The references of a boolean condition, once each; none if it does not parse."""
    try:
        tree = parse_condition(condition.text, max_leaves=1_000_000)
    except ConditionError:
        return []
    return list(dict.fromkeys(tree_references(tree)))
