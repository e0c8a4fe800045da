"""Journey and definition validation: every problem, named by field path.

Validation never stops at the first problem: it collects one
:class:`~journeys_engine.errors.FieldViolation` per problem so that a user can
fix a journey in one pass. Paths follow the public API, e.g.
``journey.steps[2].wait_duration.duration``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from journeys_engine.conditions.parser import parse_condition, parse_expression
from journeys_engine.errors import ConditionError, FieldViolation
from journeys_engine.ids import id_problem
from journeys_engine.model.definitions import DefinitionKind, Destination
from journeys_engine.model.journey import (
    Condition,
    EntryStep,
    Journey,
    JourneySettings,
    MultiBranchSplitStep,
    SendToDestinationsStep,
    Step,
    TrueFalseSplitStep,
    WaitConditionStep,
    WaitDurationStep,
    child_refs,
)
from journeys_engine.model.keys import KEY_PATTERN
from journeys_engine.model.limits import Limits
from journeys_engine.model.references import tree_references

__all__ = [
    "KnownDefinitions",
    "Report",
    "check_condition",
    "check_duration",
    "check_name",
    "check_text",
    "step_cost",
    "validate_journey",
]


@dataclass(frozen=True, slots=True)
class KnownDefinitions:
    """The space's definitions a journey or definition may refer to."""

    destinations: Mapping[str, Destination] = field(default_factory=dict)
    audience_ids: frozenset[str] = frozenset()
    computed_trait_ids: frozenset[str] = frozenset()

    def has(self, kind: DefinitionKind, ref_id: str) -> bool:
        """Whether a definition of this kind and id exists."""
        if kind is DefinitionKind.AUDIENCE:
            return ref_id in self.audience_ids
        if kind is DefinitionKind.COMPUTED_TRAIT:
            return ref_id in self.computed_trait_ids
        return ref_id in self.destinations


Report = Callable[[str, str], None]


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def check_text(report: Report, path: str, value: str, *, limit: int) -> None:
    """Reports a text that is too long or holds control characters (may be empty)."""
    if len(value) > limit:
        report(path, f"must be at most {limit} characters (got {len(value)})")
    if _has_control(value.replace("\n", "").replace("\t", "")):
        report(path, "must not contain control characters")


def check_name(report: Report, path: str, value: str, *, limit: int, required: bool = True) -> None:
    """Reports a missing (when required), blank, too long or control-character name."""
    if not value.strip():
        if required or value:
            report(path, "is required" if required else "must not be blank")
        return
    if len(value) > limit:
        report(path, f"must be at most {limit} characters (got {len(value)})")
    if _has_control(value):
        report(path, "must not contain control characters")


def check_duration(report: Report, path: str, value: int | None, *, limit: int) -> None:
    """Reports a missing, non-positive or too long duration (milliseconds)."""
    if value is None:
        report(path, "is required")
    elif value <= 0:
        report(path, "must be more than zero")
    elif value > limit:
        report(path, f"must be at most {limit // 86_400_000} days")


def check_condition(
    report: Report,
    path: str,
    condition: Condition | None,
    *,
    limits: Limits,
    known: KnownDefinitions,
    expression: bool = False,
) -> None:
    """Reports a missing, too long or unparsable condition, or one naming unknown definitions.

    Args:
        expression: Check a computed-trait expression (a scalar) rather than a
            boolean condition.
    """
    if condition is None or not condition.text.strip():
        report(path, "is required")
        return
    text = condition.text
    if len(text) > limits.max_condition_text:
        report(path, f"must be at most {limits.max_condition_text} characters")
        return
    if _has_control(text.replace("\n", "").replace("\t", "").replace("\r", "")):
        report(path, "must not contain control characters")
        return
    try:
        if expression:
            parse_expression(text)
            return
        tree = parse_condition(text, max_leaves=limits.max_condition_leaves)
    except ConditionError as err:
        report(path, err.message)
        return
    for kind, ref_id in dict.fromkeys(tree_references(tree)):
        if not known.has(kind, ref_id):
            report(path, f"refers to {kind.value} {ref_id!r}, which does not exist in this space")


def step_cost(step: Step) -> int:
    """How much a step counts toward the step limit (SPEC §4)."""
    if isinstance(step, WaitDurationStep):
        return 0
    if isinstance(step, MultiBranchSplitStep):
        return len(step.branches)
    return 1


def validate_journey(
    journey: Journey, *, limits: Limits, known: KnownDefinitions
) -> list[FieldViolation]:
    """Every problem with ``journey``'s content (not its id or lifecycle)."""
    problems: list[FieldViolation] = []

    def report(path: str, description: str) -> None:
        problems.append(FieldViolation(path, description))

    check_name(report, "journey.name", journey.name, limit=limits.max_journey_name)
    check_text(report, "journey.description", journey.description, limit=limits.max_description)
    _check_settings(report, journey.settings, limits=limits, known=known)
    _check_steps(report, journey.steps, limits=limits, known=known)
    return problems


def _check_settings(
    report: Report, settings: JourneySettings, *, limits: Limits, known: KnownDefinitions
) -> None:
    path = "journey.settings"
    if settings.exit_after_ms is not None:
        check_duration(
            report, f"{path}.exit_after", settings.exit_after_ms, limit=limits.max_setting_ms
        )
    if settings.reentry_after_ms is not None:
        if settings.exit_after_ms is None:
            report(f"{path}.reentry_after", "requires exit_after: a run without one never ends")
        check_duration(
            report, f"{path}.reentry_after", settings.reentry_after_ms, limit=limits.max_setting_ms
        )
    if settings.exit_condition is not None:
        check_condition(
            report, f"{path}.exit_condition", settings.exit_condition, limits=limits, known=known
        )


def _check_steps(
    report: Report, steps: tuple[Step, ...], *, limits: Limits, known: KnownDefinitions
) -> None:
    if not steps:
        report("journey.steps", "must hold an entry step")
        return
    cost = sum(step_cost(s) for s in steps)
    if cost > limits.max_steps:
        report(
            "journey.steps",
            f"count as {cost} steps; at most {limits.max_steps} are allowed "
            "(wait_duration counts 0, multi_branch_split one per branch, the others 1)",
        )
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        path = f"journey.steps[{i}]"
        problem = id_problem(step.id)
        if problem is not None:
            report(f"{path}.id", problem)
        elif step.id in index:
            report(f"{path}.id", f"{step.id!r} is also the id of steps[{index[step.id]}]")
        else:
            index[step.id] = i
        check_name(report, f"{path}.name", step.name, limit=limits.max_step_name)
        _check_step(report, path, step, limits=limits, known=known)

    entries = [i for i, s in enumerate(steps) if isinstance(s, EntryStep)]
    if not entries:
        report("journey.steps", "must hold exactly one entry step (found none)")
    for extra in entries[1:]:
        report(f"journey.steps[{extra}]", "is a second entry step; a journey has exactly one")
    _check_tree(report, steps, index, entries[0] if entries else None)


def _check_step(
    report: Report, path: str, step: Step, *, limits: Limits, known: KnownDefinitions
) -> None:
    kind_path = f"{path}.{step.KIND}"
    match step:
        case EntryStep() | WaitConditionStep() | TrueFalseSplitStep():
            check_condition(
                report, f"{kind_path}.condition", step.condition, limits=limits, known=known
            )
        case WaitDurationStep():
            check_duration(
                report, f"{kind_path}.duration", step.duration_ms, limit=limits.max_wait_ms
            )
        case MultiBranchSplitStep():
            _check_branches(report, kind_path, step, limits=limits, known=known)
        case SendToDestinationsStep():
            _check_send(report, kind_path, step, limits=limits, known=known)


def _check_branches(
    report: Report,
    path: str,
    step: MultiBranchSplitStep,
    *,
    limits: Limits,
    known: KnownDefinitions,
) -> None:
    count = len(step.branches)
    if count < 2:
        report(f"{path}.branches", f"must hold at least 2 branches (got {count})")
    elif count > limits.max_branches:
        report(f"{path}.branches", f"must hold at most {limits.max_branches} branches")
    names = Counter(b.name for b in step.branches)
    for j, branch in enumerate(step.branches):
        bpath = f"{path}.branches[{j}]"
        check_name(report, f"{bpath}.name", branch.name, limit=limits.max_step_name)
        if branch.name.strip() and names[branch.name] > 1:
            report(f"{bpath}.name", f"{branch.name!r} names more than one branch of this split")
        check_condition(report, f"{bpath}.condition", branch.condition, limits=limits, known=known)


def _check_send(
    report: Report,
    path: str,
    step: SendToDestinationsStep,
    *,
    limits: Limits,
    known: KnownDefinitions,
) -> None:
    seen: set[str] = set()
    for j, dest_id in enumerate(step.destination_ids):
        dpath = f"{path}.destination_ids[{j}]"
        if dest_id in seen:
            report(dpath, f"destination {dest_id!r} is listed twice")
        elif dest_id not in known.destinations:
            report(dpath, f"destination {dest_id!r} does not exist in this space")
        seen.add(dest_id)
    if step.key:
        if len(step.key) > limits.max_key:
            report(f"{path}.key", f"must be at most {limits.max_key} characters")
        elif KEY_PATTERN.fullmatch(step.key) is None:
            report(
                f"{path}.key",
                "must look like j_o_<journey slug>__<step slug>_<6 of [a-z0-9]>; "
                "leave it empty to have one generated",
            )


def _check_tree(
    report: Report, steps: tuple[Step, ...], index: Mapping[str, int], entry: int | None
) -> None:
    """Child references exist, every step but the entry has one parent, all reachable."""
    parents: dict[str, list[str]] = {}
    for i, step in enumerate(steps):
        for field_path, child in child_refs(step):
            path = f"journey.steps[{i}].{field_path}"
            if child is None:
                if not isinstance(step, TrueFalseSplitStep | SendToDestinationsStep):
                    report(path, "is required: this step must lead somewhere")
                continue
            if child not in index:
                report(path, f"refers to step {child!r}, which is not in this journey")
            elif child == step.id:
                report(path, "refers to the step itself")
            elif isinstance(steps[index[child]], EntryStep):
                report(path, "refers to the entry step; nothing may lead back to the entry")
            else:
                parents.setdefault(child, []).append(path)
    for child, paths in parents.items():
        for path in paths[1:]:
            report(path, f"step {child!r} already has a parent ({paths[0]}); steps form a tree")
    if entry is None:
        return
    reached: set[str] = set()
    pending = [steps[entry].id]
    while pending:
        step_id = pending.pop()
        if step_id in reached or step_id not in index:
            continue
        reached.add(step_id)
        pending.extend(c for _, c in child_refs(steps[index[step_id]]) if c is not None)
    parent_of = {child: _owner(paths[0]) for child, paths in parents.items()}
    for i, step in enumerate(steps):
        if step.id and index.get(step.id) == i and step.id not in reached:
            cause = (
                "it is part of a cycle"
                if _in_cycle(step.id, parent_of, steps)
                else "no step leads to it"
            )
            report(f"journey.steps[{i}]", f"is not reachable from the entry step: {cause}")


def _owner(path: str) -> int:
    """The step index in a path such as ``journey.steps[3].wait_duration.next_step_id``."""
    return int(path.split("[", 1)[1].split("]", 1)[0])


def _in_cycle(step_id: str, parent_of: Mapping[str, int], steps: tuple[Step, ...]) -> bool:
    seen: set[str] = set()
    current = step_id
    while current in parent_of and current not in seen:
        seen.add(current)
        current = steps[parent_of[current]].id
        if current == step_id:
            return True
    return False
