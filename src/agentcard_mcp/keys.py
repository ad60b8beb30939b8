"""API keys for the HTTP transports (DESIGN §10), after ClawHQ's scheme
(issuer-docs/clawhq-api-keys.txt): ``amcp_`` + 32 lowercase alphanumerics, shown once when made,
stored only as a SHA-256 digest next to a short display prefix, each with a scope and a rate.

Keys live in ``<home>/keys.db`` (mode 0600): the operator's ``keys`` command writes it and the
HTTP server reads it on every request, so a revocation takes effect on the next one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import string
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TextIO, cast

from .errors import InvalidParams, NotFound

__all__ = [
    "KEY_PATTERN",
    "RATES",
    "SCOPES",
    "ApiKey",
    "KeyStore",
    "Scope",
    "hash_key",
    "keys_command",
    "new_key",
]

Scope = Literal["cards:read", "cards:write"]
SCOPES: tuple[Scope, ...] = ("cards:read", "cards:write")
RATES = (30, 60, 120, 300)  # requests per minute, ClawHQ's tiers
KEY_PATTERN = re.compile(r"amcp_[a-z0-9]{32}")
_ALPHABET = string.ascii_lowercase + string.digits
_PREFIX_CHARS = 9  # "amcp_" and four more: enough to tell keys apart, far too few to guess one
_LAST_USED_EVERY = 60.0  # seconds: last_used is written at most this often per key

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    sha256      TEXT NOT NULL UNIQUE,
    scope       TEXT NOT NULL,
    rate        INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at  TEXT
);
"""


_BY = {
    "sha256": "SELECT * FROM api_keys WHERE sha256 = ?",
    "id": "SELECT * FROM api_keys WHERE id = ?",
}


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    scope: Scope
    rate: int
    created_at: str
    last_used_at: str | None
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def new_key() -> str:
    return "amcp_" + "".join(secrets.choice(_ALPHABET) for _ in range(32))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyStore:
    """The keys in ``<home>/keys.db``. Thread-safe; other processes are kept apart by SQLite."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / "keys.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(mode=0o600, exist_ok=True)
        self.path.chmod(0o600)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=5
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.executescript(_SCHEMA)
        self._used: dict[str, float] = {}  # key id -> monotonic time last_used was written
        # Lookups are remembered until the database changes: SQLite's data_version moves when
        # another connection (the operator's `keys revoke`) commits, and this store's own writes
        # forget them too, so a revocation still counts from the very next request.
        self._found: dict[str, sqlite3.Row | None] = {}
        self._version = -1

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._found.clear()  # this connection's own commits do not move data_version
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def create(
        self, name: str, *, scope: str = "cards:write", rate: int = 60
    ) -> tuple[str, ApiKey]:
        """A new key and its record; the key itself is returned once and never stored."""
        name = name.strip()
        if not name or len(name) > 100 or not name.isprintable():
            raise InvalidParams("--name must be 1 to 100 printable characters.")
        if scope not in SCOPES:
            raise InvalidParams(f"--scope must be one of {', '.join(SCOPES)}, not {scope!r}.")
        if rate not in RATES:
            raise InvalidParams(f"--rate must be one of {', '.join(map(str, RATES))} per minute.")
        key = new_key()
        key_id = "key_" + "".join(secrets.choice(_ALPHABET) for _ in range(12))
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO api_keys (id, name, prefix, sha256, scope, rate, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key_id, name, key[:_PREFIX_CHARS], hash_key(key), scope, rate, _now()),
            )
        return key, self.get(key_id)

    def get(self, key_id: str) -> ApiKey:
        with self._lock:
            row = self._conn.execute("SELECT * FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise NotFound(f"no key {key_id[:40]!r}; `agentcard-mcp keys list` shows them.")
        return _record(row)

    def find(self, key: str) -> ApiKey | None:
        """The active key whose digest matches, or None. The digest is looked up, then compared
        in constant time: nothing about a stored digest leaks through the comparison."""
        digest = hash_key(key)
        row = self._lookup("sha256", digest)
        if row is None or not secrets.compare_digest(row["sha256"], digest):
            return None
        record = _record(row)
        return record if record.active else None

    def is_active(self, key_id: str) -> bool:
        row = self._lookup("id", key_id)
        return row is not None and row["revoked_at"] is None

    def _lookup(self, column: Literal["sha256", "id"], value: str) -> sqlite3.Row | None:
        with self._lock:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                self._found.clear()
                self._version = version
            cache_key = f"{column}:{value}"
            if cache_key not in self._found:
                if len(self._found) > 10_000:  # unknown keys tried at random must not pile up
                    self._found.clear()
                self._found[cache_key] = self._conn.execute(_BY[column], (value,)).fetchone()
            return self._found[cache_key]

    def touch(self, key_id: str, monotonic_now: float) -> None:
        """Records that the key was used, at most once a minute (a write per request would
        serialize every request on SQLite's lock)."""
        if monotonic_now - self._used.get(key_id, -_LAST_USED_EVERY) < _LAST_USED_EVERY:
            return
        self._used[key_id] = monotonic_now
        with self._transaction() as conn:
            conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (_now(), key_id))

    def all(self) -> list[ApiKey]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM api_keys ORDER BY created_at, id").fetchall()
        return [_record(row) for row in rows]

    def any_active(self) -> bool:
        return any(key.active for key in self.all())

    def revoke(self, key_id: str) -> ApiKey:
        with self._transaction() as conn:
            done = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (_now(), key_id),
            ).rowcount
        key = self.get(key_id)  # NotFound for an unknown id
        if not done:
            raise InvalidParams(f"key {key_id} was already revoked at {key.revoked_at}.")
        return key


def _record(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scope=cast(Scope, row["scope"]),
        rate=row["rate"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


# --- `agentcard-mcp keys create | list | revoke ID` --------------------------------------------


def keys_command(
    action: str,
    home: Path,
    out: TextIO,
    err: TextIO,
    *,
    name: str | None = None,
    scope: str = "cards:write",
    rate: int = 60,
    key_id: str | None = None,
) -> int:
    """Runs one ``keys`` action; returns the exit status (0 done, 2 refused)."""
    from .errors import AgentCardError

    store = KeyStore(home)
    try:
        if action == "create":
            key, record = store.create(name or "", scope=scope, rate=rate)
            print(key, file=out)  # stdout: the key alone, so that it can be captured
            print(
                f"created {record.id} ({record.name}, {record.scope}, {record.rate}/min). This "
                "is the only time the key is shown: store it now. Send it as "
                "'Authorization: Bearer <key>'.",
                file=err,
            )
        elif action == "list":
            _print_keys(store.all(), out)
        elif action == "revoke":
            record = store.revoke(key_id or "")
            print(f"revoked {record.id} ({record.name}); its next request is refused.", file=out)
        else:
            print(f"agentcard-mcp keys: unknown action {action!r} (create, list, revoke)", file=err)
            return 2
    except AgentCardError as exc:
        print(f"agentcard-mcp keys {action}: {exc}", file=err)
        return 2
    finally:
        store.close()
    return 0


def _print_keys(keys: list[ApiKey], out: TextIO) -> None:
    if not keys:
        print("no keys yet: `agentcard-mcp keys create --name NAME`", file=out)
        return
    header = ("id", "prefix", "name", "scope", "rate", "created", "last used", "revoked")
    rows = [
        (k.id, k.prefix + "…", k.name, k.scope, f"{k.rate}/min", k.created_at,
         k.last_used_at or "never", k.revoked_at or "-")
        for k in keys
    ]  # fmt: skip
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out
        )
