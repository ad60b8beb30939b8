"""Human approval, out of band: approvals bound to a digest of the exact arguments (DESIGN §5).

When a call needs the operator's approval and the MCP client cannot ask them (elicitation), the
call fails ``approval_required`` with an approval id. The operator decides in their own terminal
(``agentcard-mcp approvals approve ID`` / ``deny ID``), and the agent repeats the call with
``approval_id``. The agent has no tool that reaches ``approve``: deciding is only ever done here,
by the operator's command, or in band by the human answering the client's elicitation form.

An approval is bound to the tool and its arguments (``digest``), single-use, and expires
``APPROVAL_TTL`` after it was requested. Approvals live in ``<home>/approvals.db`` so that they
survive a server restart and so that the server and the ``approvals`` command — two processes —
share them; every write is one ``BEGIN IMMEDIATE`` transaction, so a check and the write that
depends on it cannot interleave with another writer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import string
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TextIO, TypeVar, cast

from .errors import AgentCardError, ApprovalDenied, ApprovalRequired, InvalidParams, NotFound
from .redaction import redact_text

__all__ = [
    "APPROVAL_TTL",
    "Approval",
    "ApprovalStatus",
    "ApprovalStore",
    "approvals_command",
    "bound_arguments",
    "digest",
]

T = TypeVar("T")

ApprovalStatus = Literal["pending", "approved", "denied", "used", "expired"]
Clock = Callable[[], datetime]

APPROVAL_TTL = timedelta(minutes=10)

# Not part of what is approved: the agent repeats the call with approval_id added, and may send
# a fresh idempotency key with it.
_UNBOUND = frozenset({"approval_id", "idempotency_key"})

_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_LENGTH = 20  # ~103 bits: not guessable, so an id is only known to whoever was shown it

# Long enough to ride out the other process's transaction, short enough that a wedged peer
# surfaces as an error rather than a hang.
_BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    id          TEXT PRIMARY KEY,
    tool        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    arguments   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    decided_at  TEXT,
    used_at     TEXT
);
CREATE INDEX IF NOT EXISTS approvals_pending_digest ON approvals (digest)
    WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS approvals_created_at ON approvals (created_at);
"""


def bound_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments an approval covers: without ``approval_id`` and ``idempotency_key``, and
    without None values, so that an omitted optional and an explicit null are the same call."""
    return {k: v for k, v in arguments.items() if k not in _UNBOUND and v is not None}


def _canonical(value: Any) -> str:
    # NaN and Infinity are not JSON; refusing them keeps one text per value.
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def digest(tool: str, arguments: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of the tool name and its bound arguments."""
    text = _canonical({"tool": tool, "arguments": bound_arguments(arguments)})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Approval:
    """One request for the operator's approval, as of when it was read.

    ``status`` is ``expired`` for a pending or approved request past ``expires_at``: expiry is
    computed on read, so that no sweeper has to run for it to take effect."""

    id: str
    tool: str
    digest: str
    summary: str
    arguments: dict[str, Any]
    status: ApprovalStatus
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    used_at: datetime | None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _read(clock: Clock) -> datetime:
    now = clock()
    # A naive clock is taken as UTC rather than as local time.
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _iso(moment: datetime) -> str:
    # One fixed width (always microseconds, always +00:00) so the text orders like the time.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _new_id() -> str:
    return "apr_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def _create_private(path: Path) -> None:
    """Created 0600 before SQLite opens it (SQLite gives its -wal and -shm files the same mode):
    the rows name what the agent is spending on, which is the operator's business only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class ApprovalStore:
    """Approvals in ``<home>/approvals.db``, shared by the server and the ``approvals`` command.

    Thread-safe: calls on one instance run one at a time (one connection); instances in other
    threads or processes are kept apart by SQLite's write lock."""

    def __init__(self, home: Path, *, clock: Clock = _utcnow) -> None:
        self.path = Path(home) / "approvals.db"
        self._clock = clock
        self._lock = threading.Lock()
        _create_private(self.path)
        self._conn = sqlite3.connect(
            str(self.path),
            isolation_level=None,
            check_same_thread=False,
            timeout=_BUSY_TIMEOUT_MS / 1000,
        )
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            # WAL: the server reads while the operator's command writes, and the other way round.
            self._conn.execute("PRAGMA journal_mode = WAL")
            # FULL: an approval the operator was told about survives a crash or power loss.
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the server's side ---------------------------------------------------------------

    def request(self, tool: str, arguments: Mapping[str, Any], summary: str) -> Approval:
        """A pending approval for this exact call; the same one again while it is pending and
        unexpired, so that an agent retrying without ``approval_id`` does not pile up requests."""
        key = digest(tool, arguments)

        def write(conn: sqlite3.Connection, now: datetime) -> str:
            rows = conn.execute(
                "SELECT id FROM approvals WHERE digest = ? AND status = 'pending' "
                "AND expires_at > ? ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (key, _iso(now)),
            ).fetchall()
            if rows:
                return cast(str, rows[0]["id"])
            return self._insert(conn, now, tool, arguments, summary, "pending", key)

        return self._write_then_get(write)

    def consume(self, approval_id: str, tool: str, arguments: Mapping[str, Any]) -> Approval:
        """Checks that ``approval_id`` approves exactly this call and marks it used, in one
        transaction: of two calls racing with one approval, one succeeds and the other is told
        the approval was already used. A mismatch leaves the approval untouched."""
        key = digest(tool, arguments)

        def write(conn: sqlite3.Connection, now: datetime) -> str:
            approval = self._row(conn, approval_id, now)
            if approval.status in ("pending", "approved") and approval.digest != key:
                raise ApprovalDenied(
                    f"approval {approval.id} was approved for different arguments "
                    f"({approval.summary}); it was not used. Repeat the call with exactly those "
                    "arguments, or without approval_id to request a new approval."
                )
            _refuse_unless_approved(approval)
            conn.execute(
                "UPDATE approvals SET status = 'used', used_at = ? WHERE id = ?",
                (_iso(now), approval.id),
            )
            return approval.id

        return self._write_then_get(write)

    def record_elicited(
        self, tool: str, arguments: Mapping[str, Any], summary: str, accepted: bool
    ) -> Approval:
        """Records a decision the human made in band (MCP elicitation), for the record: stored
        ``used`` when accepted (the call goes ahead at once) or ``denied``."""
        key = digest(tool, arguments)
        status: ApprovalStatus = "used" if accepted else "denied"

        def write(conn: sqlite3.Connection, now: datetime) -> str:
            return self._insert(conn, now, tool, arguments, summary, status, key)

        return self._write_then_get(write)

    # --- the operator's side -------------------------------------------------------------

    def approve(self, approval_id: str) -> Approval:
        return self._decide(approval_id, "approved")

    def deny(self, approval_id: str) -> Approval:
        return self._decide(approval_id, "denied")

    # --- reads ---------------------------------------------------------------------------

    def get(self, approval_id: str) -> Approval:
        with self._lock:
            return self._row(self._conn, approval_id, self._now())

    def pending(self) -> list[Approval]:
        """Pending, unexpired approvals, oldest first (the order the agent asked in)."""
        with self._lock:
            now = self._now()
            rows = self._conn.execute(
                "SELECT * FROM approvals WHERE status = 'pending' AND expires_at > ? "
                "ORDER BY created_at, rowid",
                (_iso(now),),
            ).fetchall()
        return [_approval(row, now) for row in rows]

    def all(self, limit: int = 50) -> list[Approval]:
        """The most recent approvals of any status, newest first."""
        with self._lock:
            now = self._now()
            rows = self._conn.execute(
                "SELECT * FROM approvals ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_approval(row, now) for row in rows]

    # --- internals -----------------------------------------------------------------------

    def _now(self) -> datetime:
        return _read(self._clock)

    def _decide(self, approval_id: str, decision: Literal["approved", "denied"]) -> Approval:
        def write(conn: sqlite3.Connection, now: datetime) -> str:
            approval = self._row(conn, approval_id, now)
            if approval.status == "expired":
                raise InvalidParams(
                    f"approval {approval.id} expired at {_iso(approval.expires_at)}; the agent "
                    "must repeat its call to request a new approval."
                )
            if approval.status != "pending":
                raise InvalidParams(f"approval {approval.id} is already {approval.status}.")
            conn.execute(
                "UPDATE approvals SET status = ?, decided_at = ? WHERE id = ?",
                (decision, _iso(now), approval.id),
            )
            return approval.id

        return self._write_then_get(write)

    def _insert(
        self,
        conn: sqlite3.Connection,
        now: datetime,
        tool: str,
        arguments: Mapping[str, Any],
        summary: str,
        status: ApprovalStatus,
        key: str,
    ) -> str:
        approval_id = _new_id()
        decided = None if status == "pending" else _iso(now)
        used = _iso(now) if status == "used" else None
        conn.execute(
            "INSERT INTO approvals (id, tool, digest, summary, arguments, status, created_at, "
            "expires_at, decided_at, used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                approval_id,
                tool,
                key,
                summary,
                # Stored as bound, so the operator sees exactly what the digest covers.
                _canonical(bound_arguments(arguments)),
                status,
                _iso(now),
                _iso(now + APPROVAL_TTL),
                decided,
                used,
            ),
        )
        return approval_id

    def _row(self, conn: sqlite3.Connection, approval_id: str, now: datetime) -> Approval:
        row = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        if row is None:
            # The id may come from the agent: shown shortened and quoted, never raw.
            raise NotFound(
                f"no approval {approval_id[:40]!r}; `agentcard-mcp approvals list` shows the "
                "pending ones."
            )
        return _approval(row, now)

    def _write_then_get(self, fn: Callable[[sqlite3.Connection, datetime], str]) -> Approval:
        """Runs ``fn`` in ``BEGIN IMMEDIATE`` (commit if it returns, roll back if it raises) and
        reads back the approval whose id it returns, as of the same moment."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Read the clock once the write lock is ours: waiting for it must not age the check.
                now = self._now()
                approval_id = fn(conn, now)
                approval = self._row(conn, approval_id, now)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return approval


def _refuse_unless_approved(approval: Approval) -> None:
    if approval.status == "approved":
        return
    if approval.status == "pending":
        raise ApprovalRequired(
            f"approval {approval.id} is not approved yet; ask the operator to run "
            f"`agentcard-mcp approvals approve {approval.id}`, then repeat this call."
        )
    if approval.status == "denied":
        raise ApprovalDenied(
            f"approval {approval.id} was denied by the operator; do not repeat this call "
            "unless the operator asks you to."
        )
    if approval.status == "used":
        raise ApprovalDenied(
            f"approval {approval.id} was already used; approvals are single-use. Repeat the call "
            "without approval_id to request a new one."
        )
    raise ApprovalDenied(
        f"approval {approval.id} expired at {_iso(approval.expires_at)}; repeat the call without "
        "approval_id to request a new one."
    )


def _approval(row: sqlite3.Row, now: datetime) -> Approval:
    expires_at = datetime.fromisoformat(row["expires_at"])
    status = cast(ApprovalStatus, row["status"])
    if status in ("pending", "approved") and now >= expires_at:
        status = "expired"
    return Approval(
        id=row["id"],
        tool=row["tool"],
        digest=row["digest"],
        summary=row["summary"],
        arguments=json.loads(row["arguments"]),
        status=status,
        created_at=datetime.fromisoformat(row["created_at"]),
        expires_at=expires_at,
        decided_at=_parse(row["decided_at"]),
        used_at=_parse(row["used_at"]),
    )


# --- `agentcard-mcp approvals list | approve ID | deny ID` (the operator's terminal) ----------


def approvals_command(
    action: str,
    approval_id: str | None,
    home: Path,
    out: TextIO,
    err: TextIO,
    clock: Clock = _utcnow,
) -> int:
    """Runs one ``approvals`` action; returns the exit status (0 done, 2 refused)."""
    if action not in ("list", "approve", "deny"):
        print(
            f"agentcard-mcp approvals: unknown action {_printable(action)!r}; "
            "use list, approve ID or deny ID.",
            file=err,
        )
        return 2
    if action != "list" and not approval_id:
        print(
            f"agentcard-mcp approvals {action}: an approval ID is required "
            "(`agentcard-mcp approvals list` shows them).",
            file=err,
        )
        return 2
    try:
        with ApprovalStore(home, clock=clock) as store:
            if action == "list":
                _print_pending(store.pending(), _read(clock), out)
            elif action == "approve":
                approval = store.approve(cast(str, approval_id))
                print(f"approved {approval.id}: {_printable(approval.summary)}", file=out)
                print(
                    f"The agent may now repeat the call with approval_id={approval.id} "
                    f"(expires in {_remaining(approval, _read(clock))}).",
                    file=out,
                )
            else:
                approval = store.deny(cast(str, approval_id))
                print(f"denied {approval.id}: {_printable(approval.summary)}", file=out)
    except AgentCardError as exc:
        print(f"agentcard-mcp approvals {action}: {_printable(str(exc))}", file=err)
        return 2
    except (sqlite3.Error, OSError) as exc:
        # Unreadable home, a disk error, a peer holding the write lock for 10 s: say where.
        print(f"agentcard-mcp approvals {action}: {home / 'approvals.db'}: {exc}", file=err)
        return 2
    return 0


def _print_pending(approvals: list[Approval], now: datetime, out: TextIO) -> None:
    if not approvals:
        print("no pending approvals", file=out)
        return
    for approval in approvals:
        print(
            f"{approval.id}  {approval.tool}  expires in {_remaining(approval, now)}  "
            f"{_printable(approval.summary)}",
            file=out,
        )
        print(f"    arguments: {_printable(_canonical(approval.arguments))}", file=out)


def _remaining(approval: Approval, now: datetime) -> str:
    seconds = max(0, int((approval.expires_at - now).total_seconds()))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _printable(text: str) -> str:
    """Summaries and arguments carry the agent's own text (a card's purpose): escape control
    and format characters, so it cannot move the cursor, recolour or reorder (bidi) what the
    operator reads in the terminal before approving. Card details and secrets are masked
    first (DESIGN §6)."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch).startswith("C")
        else ch
        for ch in redact_text(text)
    )
