"""SQLite safety: values only ever reach SQL as parameters.

Two checks. The source: every statement the engine runs is built from string
literals alone, except where the allow-list below says why (identifiers and
placeholder lists made by the code itself, never from input). The behaviour:
values made to break SQL, LIKE patterns, JSON or C strings go through ingestion,
the profile, the timeline, the outbox and a restart, and come back exactly, with
every table intact.
"""

from __future__ import annotations

import ast
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from journeys_engine import Engine, MemorySink, Move, NotFoundError
from journeys_engine.model import (
    Condition,
    Destination,
    DestinationKind,
    EntryStep,
    EventMode,
    Journey,
    JourneySettings,
    SendToDestinationsStep,
)
from journeys_engine.testing import FakeClock

ENGINE = Path(__file__).resolve().parents[2] / "journeys_engine"

# Calls that take SQL text as their first argument (sqlite3, aiosqlite, and the
# store's own helpers, whose callers are checked in their turn). ``insert`` is the
# store's only on a transaction (``tx.insert``): a list's is not SQL.
SQL_CALLS = frozenset(
    {"execute", "executemany", "executescript", "fetchone", "fetchall", "insert"}
    | {"_scalar", "_scalar_text"}
)


def _takes_sql(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return False
    method = node.func.attr
    if method == "insert":
        return isinstance(node.func.value, ast.Name) and node.func.value.id == "tx"
    return method in SQL_CALLS


ALLOWED: dict[tuple[str, str], str] = {
    ("store/database.py", "Database._prepare"): (
        "PRAGMA takes no parameters: the synchronous level is one of two keywords and the "
        "schema version an int, both from the code; migrations are the constants of schema.py"
    ),
    ("store/durable.py", "DurableStore._append_in"): (
        "a list of ? placeholders, as many as the chunk has ids; the ids are parameters"
    ),
    ("store/durable.py", "DurableStore._erase"): (
        "the table name from a fixed tuple of four tables in the code"
    ),
    ("store/durable.py", "DurableStore.load_actors"): (
        "a list of ? placeholders, as many as the chunk has ids; the ids are parameters"
    ),
    ("store/durable.py", "DurableStore._delete_through"): (
        "table and key column names passed by the store's own compaction, from the code"
    ),
    ("store/history.py", "History.events"): (
        "? placeholder lists, and json_extract(...) IN (?, ...) clauses whose paths are "
        "literals; the event names, types and ids are parameters"
    ),
    ("store/catalog.py", "CatalogRows.count_journeys"): (
        "a list of ? placeholders, one per status; the statuses are parameters"
    ),
}


@dataclass(frozen=True)
class Built:
    module: str
    function: str
    line: int
    text: str


def _literal(node: ast.expr, scope: ast.AST | None, passed: frozenset[str]) -> bool:
    """Whether ``node`` is SQL text made of string literals alone (following local
    names to what is assigned to them)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):  # an f-string: of literal parts only
        return all(
            isinstance(part, ast.Constant)
            or (
                isinstance(part, ast.FormattedValue)
                and part.format_spec is None
                and _literal(part.value, scope, passed)
            )
            for part in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal(node.left, scope, passed) and _literal(node.right, scope, passed)
    if isinstance(node, ast.IfExp):
        return _literal(node.body, scope, passed) and _literal(node.orelse, scope, passed)
    if isinstance(node, ast.Name) and scope is not None:
        if node.id in passed:  # a helper's own SQL argument: its callers are checked
            return True
        values = _assigned(scope, node.id)
        return bool(values) and all(_literal(v, scope, passed) for v in values)
    return False  # %-formatting, .format(), a call, a subscript, a loop variable ...


def _assigned(scope: ast.AST, name: str) -> list[ast.expr]:
    """Every value assigned to ``name`` in ``scope`` (``+=`` included); a name also
    bound otherwise (a loop, a parameter) gets an unknown value."""
    values: list[ast.expr] = []
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            values.append(node.value)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and (
            isinstance(node.target, ast.Name) and node.target.id == name
        ):
            if node.value is None or (
                isinstance(node, ast.AugAssign) and not isinstance(node.op, ast.Add)
            ):
                values.append(ast.Call(ast.Name("unknown"), [], []))
            else:
                values.append(node.value)
        elif (
            isinstance(node, ast.For | ast.comprehension)
            and any(isinstance(t, ast.Name) and t.id == name for t in ast.walk(node.target))
        ) or (isinstance(node, ast.arg) and node.arg == name):
            values.append(ast.Call(ast.Name("unknown"), [], []))
    return values


def built_sql() -> list[Built]:
    """Every SQL-taking call under journeys_engine/ whose SQL is not literals alone."""
    found: list[Built] = []
    for path in sorted(ENGINE.rglob("*.py")):
        module = path.relative_to(ENGINE).as_posix()
        tree = ast.parse(path.read_text(), filename=str(path))
        for function, qualname in _functions(tree):
            passed: frozenset[str] = frozenset()
            if function.name in SQL_CALLS:
                passed = frozenset(a.arg for a in function.args.args if a.arg == "sql")
            for node in ast.walk(function):
                if not isinstance(node, ast.Call) or not _takes_sql(node):
                    continue
                sql = node.args[0] if node.args else None
                for keyword in node.keywords:
                    if keyword.arg == "sql":
                        sql = keyword.value
                if sql is None or _literal(sql, function, passed):
                    continue
                found.append(Built(module, qualname, node.lineno, ast.unparse(sql)))
    return found


def _functions(tree: ast.Module) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    """Each function with its qualified name (nested functions are checked with the
    function they are in)."""
    found: list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append((node, node.name))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.append((item, f"{node.name}.{item.name}"))
    return found


def test_sql_is_made_of_literals_except_where_the_allow_list_says_why() -> None:
    found = built_sql()
    unexplained = [b for b in found if (b.module, b.function) not in ALLOWED]
    assert unexplained == [], "\n".join(
        f"{b.module}:{b.line} in {b.function}: SQL built as {b.text}" for b in unexplained
    )
    stale = set(ALLOWED) - {(b.module, b.function) for b in found}
    assert stale == set(), f"allowed but no longer built: {sorted(stale)}"


def test_the_check_catches_every_way_of_building_sql() -> None:
    source = """
async def f(tx, table, ids, name):
    await tx.execute(f"DELETE FROM {table}")
    await tx.execute("SELECT * FROM t WHERE a = '%s'" % name)
    await tx.fetchall("SELECT * FROM {}".format(table))
    await tx.fetchone("SELECT " + name)
    query = "SELECT * FROM t WHERE a = "
    query += name
    await tx.executemany(query, ids)
    await tx.insert(sql=f"INSERT INTO t VALUES ('{name}')")
    for statement in ids:
        await tx.execute(statement)
    ok = "SELECT * FROM t WHERE a = ?"
    ok += " AND b = ?"
    await tx.execute(ok, (name, name))
    await tx.execute(f"SELECT 1" if name else "SELECT 2")
"""
    tree = ast.parse(source)
    function = tree.body[0]
    assert isinstance(function, ast.AsyncFunctionDef)
    flagged = [
        ast.unparse(node.args[0] if node.args else node.keywords[0].value)
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and _takes_sql(node)
        and not _literal(
            node.args[0] if node.args else node.keywords[0].value, function, frozenset()
        )
    ]
    assert len(flagged) == 7, flagged
    assert not any("?" in text for text in flagged)


# Hostile values

# Identifiers (user and anonymous ids, message ids): at most 255 characters, no
# control characters; events, property and trait keys and values: any text.
HOSTILE_IDS = (
    "x'); DROP TABLE actors;--",
    '"; DROP TABLE journeys; --',
    "' OR '1'='1",
    "%",
    "_",
    "%_%",
    "\\",
    "\\'",
    "?1 :a @b $c",  # SQLite's parameter markers
    "NULL",
    "u:x",  # the shape of a profile id
    "é ü 漢字 🎉",
    "a" * 255,
)
HOSTILE_TEXT = (
    *HOSTILE_IDS,
    "nul \x00 inside",
    "line\nfeed\r\ttab",
    '{"json": [1, "two"]}',
    "b" * 10_000,
)
# Ids of spaces and journeys allow [A-Za-z0-9_.-]: "_" is LIKE's one-character
# wildcard, so "a_b" would find "axb" in a query that took it for a pattern.
SPACE, DECOY = "a_b.c-1", "axb.c-1"


def _tables(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))


async def test_hostile_values_come_back_exactly_and_no_table_is_harmed(
    db_path: Path, clock: FakeClock
) -> None:
    async with await Engine.open(db_path, clock=clock, sink=MemorySink()) as engine:
        for space in (SPACE, DECOY):
            await engine.spaces.create(space)
            await engine.definitions.create(
                space, Destination("hooks", "", "Hooks", DestinationKind.EVENT, EventMode.TRACK)
            )
            journey = Journey(
                id="j",
                space_id="",
                name="Welcome",
                settings=JourneySettings(),
                steps=(
                    EntryStep(
                        "entry",
                        "Signed up",
                        Condition("event('Signed Up').count() >= 1"),
                        False,
                        "send",
                    ),
                    SendToDestinationsStep("send", "Hook", ("hooks",)),
                ),
            )
            await engine.journeys.create(space, journey)
            await engine.journeys.move(space, "j", Move.PUBLISH)
        tables = _tables(db_path)
        traits = {text: text for text in HOSTILE_TEXT}
        messages: list[dict[str, Any]] = []
        for i, user in enumerate(HOSTILE_IDS):
            messages += [
                {"type": "identify", "userId": user, "messageId": user, "traits": traits},
                {
                    "type": "track",
                    "userId": user,
                    "anonymousId": user,
                    "event": "Signed Up",
                    "messageId": f"{i}{user}"[:255],
                    "properties": traits,
                },
                *(
                    {"type": "track", "userId": user, "event": event, "messageId": f"{i}.{j}"}
                    for j, event in enumerate(HOSTILE_TEXT)
                ),
            ]
        result = await engine.ingest(SPACE, messages)
        assert result.errors == {}
        assert result.accepted == len(messages)
        # Sent again: each message id is found again, exactly, as a duplicate.
        again = await engine.ingest(SPACE, messages)
        assert again.accepted == 0
        assert len(again.duplicates) == len(messages)
        # An identifier with a control character is refused by name, not stored.
        refused = await engine.ingest(SPACE, [{"type": "track", "userId": "a\x00b", "event": "E"}])
        assert list(refused.errors) == [0]
        await engine.ingest(DECOY, [{"type": "track", "userId": "decoy", "event": "Signed Up"}])
        await engine.settle()

    async with await Engine.open(db_path, clock=clock) as engine:  # from the disk
        await engine.ready()
        for user in HOSTILE_IDS:
            profile = await engine.reporting.profile(SPACE, user_id=user)
            assert profile.user_id == user
            assert profile.anonymous_id == user
            assert profile.traits == traits
            timeline = await engine.reporting.timeline(SPACE, user_id=user)
            assert {entry.journey_id for entry in timeline.items} == {"j"}
            with pytest.raises(NotFoundError):
                await engine.reporting.profile(DECOY, user_id=user)
        calls = await engine.store.read(SPACE, "hooks", 0, 1000)
        assert sorted(json.loads(call.payload)["userId"] for call in calls) == sorted(HOSTILE_IDS)
        (decoy,) = await engine.store.read(DECOY, "hooks", 0, 1000)
        assert json.loads(decoy.payload)["userId"] == "decoy"

    assert _tables(db_path) == tables
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        logged = [json.loads(text) for (text,) in conn.execute(
            "SELECT message FROM ingest_log WHERE space_id = ?", (SPACE,)
        )]  # fmt: skip
    events = {m["event"] for m in logged if m.get("type") == "track"}
    assert events == {"Signed Up", *HOSTILE_TEXT}
    assert all(m["traits"] == traits for m in logged if m.get("type") == "identify")
    assert {m["messageId"] for m in logged if m.get("type") == "identify"} == set(HOSTILE_IDS)
