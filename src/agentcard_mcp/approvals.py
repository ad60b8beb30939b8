"""Human approval, out of band: approvals bound to a digest of the exact arguments (DESIGN §5).

When a call needs the operator's approval and the MCP client cannot ask them (elicitation), the
call fails ``approval_required`` with an approval id. The operator decides in their own terminal
(``agentcard-mcp approvals approve ID`` / ``deny ID``), and the agent repeats the call with
``approval_id``. The agent has no tool that reaches ``approve``: deciding is only ever done here,
by the operator's command, or in band by the human answering the client's elicitation form.

This module holds the rules; the approvals themselves live behind ``storage/`` (an
:class:`~agentcard_mcp.storage.base.ApprovalStore`: ``<home>/approvals.db``, or a table shared
by every replica on PostgreSQL), so that they survive a restart and the server, its replicas and
the ``approvals`` command all see the same ones. Every backend applies the same rules:

- An approval is bound to the tool and its arguments (``digest``), single-use, and expires
  ``APPROVAL_TTL`` after it was requested; expiry is computed on read (:func:`as_of`), so no
  sweeper has to run for it to take effect.
- ``request`` returns the pending, unexpired approval of the same digest if there is one, so
  an agent retrying without ``approval_id`` does not pile up requests; it says which it was
  (:class:`Requested`), so that only a new request is announced to the operator.
- ``consume`` checks (:func:`check_consumable`) and marks the approval used in one transaction
  that holds the row: of calls racing with one approval, on any replica, exactly one succeeds.
- Deciding (:func:`check_decidable`) is for a pending, unexpired request only.
- Each write reads the clock only once it holds its lock: waiting must not age the check.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TextIO, cast

from .errors import AgentCardError, ApprovalDenied, ApprovalRequired, InvalidParams, NotFound
from .invisible import hidden
from .redaction import redact, redact_quoting, redact_text

if TYPE_CHECKING:
    from .operator import ApprovalView
    from .storage.base import ApprovalStore, KeyStore

__all__ = [
    "APPROVAL_TTL",
    "Approval",
    "ApprovalStatus",
    "Clock",
    "NewStatus",
    "Requested",
    "Row",
    "approvals_command",
    "as_of",
    "bound_arguments",
    "canonical",
    "check_consumable",
    "check_decidable",
    "digest",
    "from_row",
    "new_approval",
    "not_found",
    "read_clock",
    "utcnow",
]

ApprovalStatus = Literal["pending", "approved", "denied", "used", "expired"]
# What a new row is stored as: a request, or a decision the human made in band.
NewStatus = Literal["pending", "used", "denied"]
Clock = Callable[[], datetime]

APPROVAL_TTL = timedelta(minutes=10)

# Not part of what is approved: the agent repeats the call with approval_id added, and may send
# a fresh idempotency key with it.
_UNBOUND = frozenset({"approval_id", "idempotency_key"})

_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_LENGTH = 20  # ~103 bits: not guessable, so an id is only known to whoever was shown it


def bound_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments an approval covers: without ``approval_id`` and ``idempotency_key``, and
    without None values, so that an omitted optional and an explicit null are the same call."""
    return {k: v for k, v in arguments.items() if k not in _UNBOUND and v is not None}


def canonical(value: Any) -> str:
    """One JSON text per value: sorted keys, no spaces. NaN and Infinity are not JSON, and are
    refused rather than written two ways."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def digest(tool: str, arguments: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of the tool name and its bound arguments."""
    text = canonical({"tool": tool, "arguments": bound_arguments(arguments)})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Approval:
    """One request for the operator's approval, as of when it was read.

    ``status`` is ``expired`` for a pending or approved request past ``expires_at``."""

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
    # Who asked: "stdio", an HTTP API key's id (``consent.caller``); None when not recorded
    # (an approval made before the column existed).
    caller: str | None = None


class Requested(NamedTuple):
    """What ``request`` returns: the pending approval, and whether this request made it
    (``new``) rather than finding the same call already pending. Only a new one is announced
    to the operator (``AGENTCARD_APPROVAL_WEBHOOK``)."""

    approval: Approval
    new: bool


def utcnow() -> datetime:
    return datetime.now(UTC)


def read_clock(clock: Clock) -> datetime:
    """The clock's time in UTC; a naive clock is taken as UTC rather than as local time."""
    now = clock()
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _new_id() -> str:
    return "apr_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def new_approval(
    tool: str,
    arguments: Mapping[str, Any],
    summary: str,
    status: NewStatus,
    now: datetime,
    caller: str | None = None,
) -> Approval:
    """A new row: a ``pending`` request, or a decision made in band (``used`` when the human
    accepted and the call goes ahead at once, ``denied`` otherwise). The arguments are stored
    as bound, so the operator sees what the digest covers — masked, as is the summary: the
    digest binds the raw arguments, but no card number, CVC, expiry or key is ever stored."""
    bound = bound_arguments(arguments)
    stored = redact(bound)
    return Approval(
        id=_new_id(),
        tool=tool,
        digest=digest(tool, arguments),
        summary=redact_quoting(summary, bound, stored),
        arguments=stored,
        status=status,
        created_at=now,
        expires_at=now + APPROVAL_TTL,
        decided_at=None if status == "pending" else now,
        used_at=now if status == "used" else None,
        caller=caller,
    )


def as_of(approval: Approval, now: datetime) -> Approval:
    """The approval as it stands at ``now``: a pending or approved one past its expiry reads
    ``expired``; used and denied stay what they are."""
    if approval.status in ("pending", "approved") and now >= approval.expires_at:
        return replace(approval, status="expired")
    return approval


def _moment(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


class Row(Protocol):
    """A stored row, by column name (``sqlite3.Row``, psycopg's ``dict_row``)."""

    def __getitem__(self, key: str, /) -> Any: ...


def from_row(row: Row, now: datetime) -> Approval:
    """A stored row (columns named as :class:`Approval`'s fields; times as datetimes or ISO
    text, arguments as a dict or JSON text) read at ``now``."""
    arguments = row["arguments"]
    approval = Approval(
        id=row["id"],
        tool=row["tool"],
        digest=row["digest"],
        summary=row["summary"],
        arguments=json.loads(arguments) if isinstance(arguments, str) else dict(arguments),
        status=cast(ApprovalStatus, row["status"]),
        created_at=cast(datetime, _moment(row["created_at"])),
        expires_at=cast(datetime, _moment(row["expires_at"])),
        decided_at=_moment(row["decided_at"]),
        used_at=_moment(row["used_at"]),
        caller=_caller_of(row),
    )
    return as_of(approval, now)


def _caller_of(row: Row) -> str | None:
    try:
        value = row["caller"]
    except (KeyError, IndexError):  # a row read without the column (sqlite3.Row: IndexError)
        return None
    return None if value is None else str(value)


def not_found(approval_id: str) -> NotFound:
    # The id may come from the agent: shown shortened and quoted, never raw.
    return NotFound(
        f"no approval {approval_id[:40]!r}; `agentcard-mcp approvals list` shows the pending ones."
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def check_consumable(approval: Approval, key: str) -> None:
    """Raises unless ``approval`` approves the call whose digest is ``key``, now. A mismatch
    says so and leaves the approval usable for the call it was given for."""
    if approval.status in ("pending", "approved") and approval.digest != key:
        raise ApprovalDenied(
            f"approval {approval.id} was approved for different arguments; it was not used. "
            "Repeat the call with exactly those arguments, or without approval_id to request a "
            f"new approval. It approves:\n{approval.summary}"
        )
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


def check_decidable(approval: Approval) -> None:
    """Raises unless the operator may still approve or deny ``approval``: pending, unexpired."""
    if approval.status == "expired":
        raise InvalidParams(
            f"approval {approval.id} expired at {_iso(approval.expires_at)}; the agent "
            "must repeat its call to request a new approval."
        )
    if approval.status != "pending":
        raise InvalidParams(f"approval {approval.id} is already {approval.status}.")


# --- `agentcard-mcp approvals list | approve ID | deny ID` (the operator's terminal) ----------


async def approvals_command(
    action: str,
    approval_id: str | None,
    store: ApprovalStore,
    out: TextIO,
    err: TextIO,
    clock: Clock = utcnow,
    keys: KeyStore | None = None,
) -> int:
    """Runs one ``approvals`` action on ``store``; returns the exit status (0 done, 2 refused).
    The store's own failures (a disk error, the database unreachable) are raised. With
    ``keys``, who asked is shown by the HTTP key's name."""
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
    from .operator import ApprovalDesk  # operator.py builds on this module's rules

    desk = ApprovalDesk(store, clock, keys)
    try:
        if action == "list":
            _print_pending(await desk.pending(), out)
        elif action == "approve":
            approved = await desk.approve(cast(str, approval_id))
            approval = approved.approval
            print(f"approved {approval.id}: {_summary(approval.summary)}", file=out)
            print(
                f"The agent may now repeat the call with approval_id={approval.id} "
                f"(expires in {approved.time_left}).",
                file=out,
            )
        else:
            approval = (await desk.deny(cast(str, approval_id))).approval
            print(f"denied {approval.id}: {_summary(approval.summary)}", file=out)
    except AgentCardError as exc:
        print(f"agentcard-mcp approvals {action}: {_printable(str(exc))}", file=err)
        return 2
    return 0


def _print_pending(views: list[ApprovalView], out: TextIO) -> None:
    if not views:
        print("no pending approvals", file=out)
        return
    for view in views:
        approval = view.approval
        print(
            f"{approval.id}  {approval.tool}  expires in {view.time_left}  "
            f"{_summary(approval.summary)}",
            file=out,
        )
        if view.asked_by is not None:
            print(f"    asked by: {_printable(view.asked_by)}", file=out)
        print(f"    arguments: {_printable(canonical(approval.arguments))}", file=out)


def _summary(summary: str) -> str:
    """A summary for the terminal: its first line (the amounts and why it is asked) where it
    is printed, each argument's line under it, indented; every line made printable."""
    first, *rest = summary.split("\n")
    return "\n".join([_printable(first), *(f"    {_printable(line.strip())}" for line in rest)])


def _printable(text: str) -> str:
    """Summaries and arguments carry the agent's own text (a card's purpose): escape control
    and format characters, so it cannot move the cursor, recolour or reorder (bidi) what the
    operator reads in the terminal before approving. Card details and secrets are masked
    first (DESIGN §6). Blank-looking characters (``invisible``) are escaped too: they could
    push what follows out of sight."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch).startswith("C") or hidden(ch)
        else ch
        for ch in redact_text(text)
    )
