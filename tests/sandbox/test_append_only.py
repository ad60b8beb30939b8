"""The ledger is append-only in the database itself: a raw SQLite connection to the file (not
going through the sandbox, with or without recursive triggers) cannot change or remove a row."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Sandbox

pytestmark = pytest.mark.anyio

COLUMNS = (
    "seq, id, owner_id, agent_id, card_id, decided_at, decision, reason, amount_cents, "
    "currency, merchant, mcc, network_id, current_daily_spend_cents_after"
)


@pytest.fixture
async def ledger_db(inprocess: Sandbox) -> Path:
    """A sandbox database with four ledger rows: three approvals and one decline."""
    card = (
        await inprocess.client.post(
            "/v1/cards",
            json={"agent_id": inprocess.credentials.agent_id, "daily_limit_cents": 3000},
        )
    ).json()
    for amount in (1000, 1000, 5000, 1000):
        response = await inprocess.client.post(
            "/v1/_test/swipe",
            json={"card_id": card["id"], "amount_cents": amount, "merchant": "M", "mcc": "saas"},
        )
        assert response.status_code == 200
    return inprocess.db_path


@contextlib.contextmanager
def raw(path: Path, *, recursive: bool) -> Iterator[sqlite3.Connection]:
    """A plain connection to the file, in autocommit mode, as any other program would open it."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=10)) as conn:
        conn.execute(f"PRAGMA recursive_triggers = {'ON' if recursive else 'OFF'}")
        yield conn


def rows(path: Path) -> list[tuple[Any, ...]]:
    with raw(path, recursive=False) as conn:
        return conn.execute(f"SELECT {COLUMNS} FROM ledger ORDER BY seq").fetchall()


def _values(row: tuple[Any, ...], **changes: Any) -> tuple[Any, ...]:
    names = [name.strip() for name in COLUMNS.split(",")]
    return tuple(changes.get(name, value) for name, value in zip(names, row, strict=True))


def _insert(verb: str, tail: str = "") -> str:
    marks = ", ".join("?" * len(COLUMNS.split(",")))
    return f"{verb} INTO ledger ({COLUMNS}) VALUES ({marks}) {tail}"


def tampering(first: tuple[Any, ...], last: tuple[Any, ...]) -> dict[str, tuple[str, Any]]:
    """Each way a raw connection might try to rewrite history, as (sql, parameters)."""
    seq, ident = first[0], first[1]
    next_seq = last[0] + 1
    update_amount = "amount_cents = excluded.amount_cents"
    return {
        "update": ("UPDATE ledger SET amount_cents = 1 WHERE id = ?", (ident,)),
        "update_all": ("UPDATE ledger SET decision = 'decline'", ()),
        "update_or_replace": (
            "UPDATE OR REPLACE ledger SET id = ? WHERE seq = ?",
            (last[1], seq),
        ),
        "delete": ("DELETE FROM ledger WHERE id = ?", (ident,)),
        "delete_all": ("DELETE FROM ledger", ()),
        "replace_same_id": (
            _insert("INSERT OR REPLACE"),
            _values(first, seq=next_seq, amount_cents=1),
        ),
        "replace_same_seq": (
            _insert("INSERT OR REPLACE"),
            _values(first, id="auth_forged", amount_cents=1),
        ),
        "replace_keyword": (_insert("REPLACE"), _values(first, amount_cents=1)),
        "upsert_on_id": (
            _insert("INSERT", f"ON CONFLICT(id) DO UPDATE SET {update_amount}"),
            _values(first, seq=next_seq, amount_cents=1),
        ),
        "upsert_on_seq": (
            _insert("INSERT", f"ON CONFLICT(seq) DO UPDATE SET {update_amount}"),
            _values(first, id="auth_forged", amount_cents=1),
        ),
        "upsert_any": (
            _insert("INSERT", f"ON CONFLICT DO UPDATE SET {update_amount}"),
            _values(first, amount_cents=1),
        ),
    }


KINDS = [
    "update",
    "update_all",
    "update_or_replace",
    "delete",
    "delete_all",
    "replace_same_id",
    "replace_same_seq",
    "replace_keyword",
    "upsert_on_id",
    "upsert_on_seq",
    "upsert_any",
]


@pytest.mark.parametrize("recursive", [False, True], ids=["plain", "recursive_triggers"])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_raw_connection_cannot_rewrite_the_ledger(
    ledger_db: Path, kind: str, recursive: bool
) -> None:
    before = rows(ledger_db)
    assert len(before) == 4
    sql, params = tampering(before[0], before[-1])[kind]

    with raw(ledger_db, recursive=recursive) as conn, pytest.raises(sqlite3.DatabaseError) as err:
        conn.execute(sql, params)

    assert "append-only" in str(err.value)
    assert err.value.sqlite_errorname == "SQLITE_CONSTRAINT_TRIGGER"
    assert rows(ledger_db) == before


@pytest.mark.parametrize("recursive", [False, True], ids=["plain", "recursive_triggers"])
async def test_tampering_inside_an_explicit_transaction_leaves_nothing_behind(
    ledger_db: Path, recursive: bool
) -> None:
    before = rows(ledger_db)
    with raw(ledger_db, recursive=recursive) as conn:
        conn.execute("BEGIN IMMEDIATE")
        for sql, params in tampering(before[0], before[-1]).values():
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(sql, params)
        conn.execute("COMMIT")
    assert rows(ledger_db) == before


async def test_an_ordinary_append_still_works_on_a_raw_connection(ledger_db: Path) -> None:
    before = rows(ledger_db)
    with raw(ledger_db, recursive=True) as conn:
        conn.execute(_insert("INSERT"), _values(before[-1], seq=None, id="auth_appended"))
    after = rows(ledger_db)
    assert after[:-1] == before
    assert after[-1][1] == "auth_appended"


async def test_the_store_connection_is_durable(inprocess: Sandbox) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[Any, ...]:
        return tuple(
            conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "foreign_keys", "recursive_triggers")
        )

    # synchronous = 2 is FULL: every commit is on disk before the response goes out. Both the
    # event-loop path (read) and the worker-thread path (read_sync) use durable connections.
    assert await inprocess.store.read(pragmas) == ("wal", 2, 1, 1)
    assert inprocess.store.read_sync(pragmas) == ("wal", 2, 1, 1)
    assert await inprocess.store.transaction(pragmas) == ("wal", 2, 1, 1)
    # WAL is a property of the file: any other connection sees it too.
    with raw(inprocess.db_path, recursive=False) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
