"""Update masks: which fields an update replaces."""

from __future__ import annotations

from collections.abc import Sequence

from journeys_engine.errors import FieldViolation, InvalidArgumentError

__all__ = ["mask_paths"]


def mask_paths(
    update_mask: Sequence[str], allowed: Sequence[str], *, fixed: Sequence[str] = ()
) -> tuple[str, ...]:
    """The mask's paths without repeats, or every allowed path when the mask is empty.

    Raises:
        InvalidArgumentError: naming each path that cannot be updated.
    """
    problems = []
    for i, path in enumerate(update_mask):
        if path in fixed:
            problems.append(
                FieldViolation(f"update_mask.paths[{i}]", f"{path!r} is fixed at creation")
            )
        elif path not in allowed:
            problems.append(
                FieldViolation(
                    f"update_mask.paths[{i}]",
                    f"{path!r} cannot be updated; allowed: {', '.join(allowed)}",
                )
            )
    if problems:
        raise InvalidArgumentError(problems)
    return tuple(dict.fromkeys(update_mask)) if update_mask else tuple(allowed)
