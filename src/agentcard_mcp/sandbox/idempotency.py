"""Idempotency-Key handling: same key and same request within 24 h replays the stored response.

The stored response is written in the same transaction as the effect it describes, and the
lookup happens inside that transaction too. Because write transactions are serialized
(``BEGIN IMMEDIATE``), a key sent twice at once cannot execute twice: the second request's
transaction starts after the first committed, finds the stored response and replays it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass

from .errors import conflict

__all__ = ["REPLAY_WINDOW_SECONDS", "StoredResponse", "fingerprint", "lookup", "remember"]

REPLAY_WINDOW_SECONDS = 24 * 60 * 60


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What "the same request" means: method, path and the exact body bytes."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def lookup(conn: sqlite3.Connection, scope: str, key: str, print_: str) -> StoredResponse | None:
    """The stored response for this key, None if unused, 409 if it was used for another request."""
    row = conn.execute(
        "SELECT fingerprint, status, body, created_at FROM idempotency WHERE scope = ? AND key = ?",
        (scope, key),
    ).fetchone()
    if row is None:
        return None
    if row["created_at"] < time.time() - REPLAY_WINDOW_SECONDS:
        conn.execute("DELETE FROM idempotency WHERE scope = ? AND key = ?", (scope, key))
        return None
    if row["fingerprint"] != print_:
        raise conflict(
            "idempotency_key_reused",
            "This Idempotency-Key was already used with a different request. "
            "Use a fresh key for every logical operation.",
        )
    return StoredResponse(row["status"], row["body"])


def remember(
    conn: sqlite3.Connection, scope: str, key: str, print_: str, response: StoredResponse
) -> None:
    conn.execute(
        "INSERT INTO idempotency (scope, key, fingerprint, status, body, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (scope, key, print_, response.status, response.body, time.time()),
    )
