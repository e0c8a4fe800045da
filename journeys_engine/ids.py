"""Identifiers: the accepted shape, and fresh random ones."""

from __future__ import annotations

import re
import secrets
import string

__all__ = ["ID_PATTERN", "id_problem", "new_id", "random_suffix"]

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ALPHABET = string.ascii_lowercase + string.digits


def random_suffix(length: int) -> str:
    """``length`` random characters of ``[a-z0-9]``."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_id(prefix: str) -> str:
    """A fresh id such as ``jr_k3j9x0q2m1zz``."""
    return f"{prefix}_{random_suffix(12)}"


def id_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable id, or None when it is."""
    if not value:
        return "is required"
    if ID_PATTERN.fullmatch(value) is None:
        return (
            "must be 1-64 characters of letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return None
