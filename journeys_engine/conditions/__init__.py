"""Conditions: Segment's audience query language, parsed, printed and evaluated.

Text becomes a checked tree with :func:`parse_condition` (boolean conditions)
or :func:`parse_expression` (computed traits), and prints back canonically
with :func:`print_condition` / :func:`print_expression`. :func:`evaluate` gives
a condition's value for a profile at an instant and the instant to look again.
"""

from journeys_engine.conditions.ast import (
    And,
    AudienceRef,
    Between,
    BoolNode,
    Comparison,
    ComputedTraitRef,
    EventAggregate,
    Literal,
    Not,
    Op,
    Or,
    PathRef,
    Reducer,
    ReducerKind,
    Scalar,
    Span,
    TimeUnit,
    TraitRef,
    Within,
)
from journeys_engine.conditions.evaluator import Definitions, evaluate, evaluate_scalar
from journeys_engine.conditions.parser import parse_condition, parse_expression
from journeys_engine.conditions.printer import print_condition, print_expression
from journeys_engine.conditions.profile import (
    EventRecord,
    LeafIndex,
    ProfileConditions,
    Refresh,
    SpaceConditions,
)
from journeys_engine.conditions.state import LeafSpec, LeafState

__all__ = [
    "And",
    "AudienceRef",
    "Between",
    "BoolNode",
    "Comparison",
    "ComputedTraitRef",
    "Definitions",
    "EventAggregate",
    "EventRecord",
    "LeafIndex",
    "LeafSpec",
    "LeafState",
    "Literal",
    "Not",
    "Op",
    "Or",
    "PathRef",
    "ProfileConditions",
    "Reducer",
    "ReducerKind",
    "Refresh",
    "Scalar",
    "Span",
    "SpaceConditions",
    "TimeUnit",
    "TraitRef",
    "Within",
    "evaluate",
    "evaluate_scalar",
    "parse_condition",
    "parse_expression",
    "print_condition",
    "print_expression",
]
