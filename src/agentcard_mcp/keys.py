"""API keys for the HTTP transports (DESIGN §10), after ClawHQ's scheme
(issuer-docs/clawhq-api-keys.txt): ``amcp_`` + 32 lowercase alphanumerics, shown once when made,
stored only as a SHA-256 digest next to a short display prefix, each with a scope, a rate and
whether the operator lets its client be asked for approvals in band (``allow_in_band_approval``,
off by default: over HTTP the client is code on the agent's side).

This module is the key itself — its format, digest, display prefix, scopes and rates, what a new
one must be, and the constant-time match — shared by both places keys are kept (DESIGN §12):
``<home>/keys.db`` (storage/sqlite/keys.py) or the ``api_keys`` table of
``AGENTCARD_DATABASE_URL`` (storage/postgres/keys.py). Either is read on every request, so a
revocation takes effect on the next one. ``keys_command`` is the operator's ``keys`` command on
the configured one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, TextIO

from .errors import InvalidParams, NotFound

if TYPE_CHECKING:
    from .storage.base import KeyStore

__all__ = [
    "KEY_PATTERN",
    "LAST_USED_EVERY",
    "RATES",
    "SCOPES",
    "ApiKey",
    "NewKey",
    "Scope",
    "StoredKey",
    "already_revoked",
    "hash_key",
    "keys_command",
    "mint",
    "new_key",
    "no_such_key",
    "timestamp",
]

Scope = Literal["cards:read", "cards:write"]
SCOPES: tuple[Scope, ...] = ("cards:read", "cards:write")
RATES = (30, 60, 120, 300)  # requests per minute, ClawHQ's tiers
KEY_PATTERN = re.compile(r"amcp_[a-z0-9]{32}")
_ALPHABET = string.ascii_lowercase + string.digits
_PREFIX_CHARS = 9  # "amcp_" and four more: enough to tell keys apart, far too few to guess one
# Seconds: a key's last use is written at most this often (per key and process), since a write
# per request would serialize every request on the database.
LAST_USED_EVERY = 60.0


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
    allow_in_band_approval: bool = False

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class StoredKey:
    """A key's record as a backend keeps it: the record and the digest it is found by."""

    record: ApiKey
    sha256: str

    def matches(self, presented: str) -> ApiKey | None:
        """The record, if ``presented`` is this key and it is active. The digest was looked up;
        it is compared again in constant time, so nothing about a stored digest leaks."""
        if not secrets.compare_digest(self.sha256, hash_key(presented)):
            return None
        return self.record if self.record.active else None


@dataclass(frozen=True)
class NewKey:
    """A key about to be stored. ``key`` itself is shown once and never stored."""

    key: str
    id: str
    name: str
    scope: Scope
    rate: int
    allow_in_band_approval: bool = False

    @property
    def prefix(self) -> str:
        return self.key[:_PREFIX_CHARS]

    @property
    def sha256(self) -> str:
        return hash_key(self.key)


def new_key() -> str:
    return "amcp_" + "".join(secrets.choice(_ALPHABET) for _ in range(32))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def timestamp(moment: datetime | None = None) -> str:
    """How a key's times read: UTC, ISO 8601, to the second."""
    return (moment or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")


def mint(
    name: str, *, scope: str = "cards:write", rate: int = 60, allow_in_band_approval: bool = False
) -> NewKey:
    """A new key named ``name``; invalid_params for a name, scope or rate it cannot have."""
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise InvalidParams("--name must be 1 to 100 printable characters.")
    if scope not in SCOPES:
        raise InvalidParams(f"--scope must be one of {', '.join(SCOPES)}, not {scope!r}.")
    if rate not in RATES:
        raise InvalidParams(f"--rate must be one of {', '.join(map(str, RATES))} per minute.")
    key_id = "key_" + "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return NewKey(new_key(), key_id, name, scope, rate, allow_in_band_approval)


def no_such_key(key_id: str) -> NotFound:
    return NotFound(f"no key {key_id[:40]!r}; `agentcard-mcp keys list` shows them.")


def already_revoked(key: ApiKey) -> InvalidParams:
    return InvalidParams(f"key {key.id} was already revoked at {key.revoked_at}.")


# --- `agentcard-mcp keys create | list | revoke ID` --------------------------------------------


async def keys_command(
    action: str,
    store: KeyStore,
    out: TextIO,
    err: TextIO,
    *,
    name: str | None = None,
    scope: str = "cards:write",
    rate: int = 60,
    allow_in_band_approval: bool = False,
    key_id: str | None = None,
) -> int:
    """Runs one ``keys`` action on ``store`` (the configured backend's); returns the exit
    status (0 done, 2 refused)."""
    from .errors import AgentCardError
    from .operator import KeyDesk

    desk = KeyDesk(store)
    try:
        if action == "create":
            key, record = await desk.create(
                name or "", scope=scope, rate=rate, allow_in_band_approval=allow_in_band_approval
            )
            print(key, file=out)  # stdout: the key alone, so that it can be captured
            in_band = ", in-band approval" if record.allow_in_band_approval else ""
            print(
                f"created {record.id} ({record.name}, {record.scope}, {record.rate}/min{in_band})."
                " This is the only time the key is shown: store it now. Send it as "
                "'Authorization: Bearer <key>'.",
                file=err,
            )
        elif action == "list":
            _print_keys(await desk.keys(), out)
        elif action == "revoke":
            record = await desk.revoke(key_id or "")
            print(f"revoked {record.id} ({record.name}); its next request is refused.", file=out)
        else:
            print(f"agentcard-mcp keys: unknown action {action!r} (create, list, revoke)", file=err)
            return 2
    except AgentCardError as exc:
        print(f"agentcard-mcp keys {action}: {exc}", file=err)
        return 2
    return 0


def _print_keys(keys: list[ApiKey], out: TextIO) -> None:
    if not keys:
        print("no keys yet: `agentcard-mcp keys create --name NAME`", file=out)
        return
    header = ("id", "prefix", "name", "scope", "rate", "in-band approval", "created",
              "last used", "revoked")  # fmt: skip
    rows = [
        (k.id, k.prefix + "…", k.name, k.scope, f"{k.rate}/min",
         "allowed" if k.allow_in_band_approval else "no", k.created_at,
         k.last_used_at or "never", k.revoked_at or "-")
        for k in keys
    ]  # fmt: skip
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=out
        )
