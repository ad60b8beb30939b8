"""Owners, API keys, sign-up verification and agents.

API keys are ``ac_test_`` plus 32 random lowercase alphanumerics; only their SHA-256 is stored
and the plaintext is returned exactly once. Sign-up sends a 6-digit code to the human's inbox —
in the sandbox, the log on stderr — which expires after 10 minutes, is single-use and locks
after five wrong tries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .clock import isoformat
from .errors import ApiError, conflict, invalid, not_found
from .ids import new_id

__all__ = [
    "KEY_PREFIX",
    "Provisioned",
    "agent_row",
    "authenticate",
    "create_agent",
    "delete_agent",
    "get_agent",
    "hash_key",
    "list_agents",
    "list_keys",
    "mint_key",
    "owner_view",
    "patch_owner",
    "provision_owner",
    "revoke_key",
    "set_agent_status",
    "set_owner_suspended",
    "sign_up",
    "update_agent",
    "verify",
]

KEY_PREFIX = "ac_test_"
_KEY_ALPHABET = string.ascii_lowercase + string.digits
STARTER_DAILY_LIMIT_CENTS = 10_000  # "$100/day, no MCC restrictions"
TEST_DEPOSIT_CENTS = 100_000
CARD_HOLD_LIMIT = 25
CODE_TTL = timedelta(minutes=10)
MAX_CODE_ATTEMPTS = 5

inbox = logging.getLogger("agentcard_mcp.sandbox.inbox")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Provisioned:
    owner_id: str
    agent_id: str
    card_id: str | None
    last4: str | None
    api_key: str


def mint_key(conn: sqlite3.Connection, owner_id: str, now: datetime) -> tuple[str, str]:
    """A new key for ``owner_id``: returns (key id, plaintext). Only the hash is stored."""
    key = KEY_PREFIX + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(32))
    key_id = new_id("key")
    conn.execute(
        "INSERT INTO api_keys (id, owner_id, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)",
        (key_id, owner_id, hash_key(key), key[: len(KEY_PREFIX) + 4], isoformat(now)),
    )
    return key_id, key


def authenticate(conn: sqlite3.Connection, authorization: str | None) -> str:
    """The owner id for a ``Bearer ac_test_...`` header, or a 401."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _unauthorized("No API key provided. Send 'Authorization: Bearer ac_test_...'.")
    digest = hash_key(key.strip())
    row = conn.execute(
        "SELECT key_hash, owner_id, revoked_at FROM api_keys WHERE key_hash = ?", (digest,)
    ).fetchone()
    # The lookup is by hash, so timing reveals nothing about the key; compare_digest keeps the
    # final comparison constant-time as well.
    if row is None or not hmac.compare_digest(row["key_hash"], digest):
        raise _unauthorized("Invalid API key provided.")
    if row["revoked_at"] is not None:
        raise _unauthorized("This API key has been revoked.")
    return str(row["owner_id"])


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "authentication_error", "invalid_api_key", message)


def list_keys(conn: sqlite3.Connection, owner_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, prefix, created_at, revoked_at FROM api_keys WHERE owner_id = ? ORDER BY id",
        (owner_id,),
    ).fetchall()
    return [dict(row) for row in rows]


def revoke_key(
    conn: sqlite3.Connection, owner_id: str, key_id: str, now: datetime
) -> dict[str, Any]:
    cursor = conn.execute(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? AND owner_id = ?",
        (isoformat(now), key_id, owner_id),
    )
    if cursor.rowcount == 0:
        raise not_found("api_key", key_id)
    return {"id": key_id, "revoked": True}


def provision_owner(
    conn: sqlite3.Connection,
    email: str,
    agent_name: str | None,
    now: datetime,
    *,
    starter_card: bool,
) -> Provisioned:
    """An owner with a starter agent, a test key and (as sign-up does) a starter card."""
    if conn.execute("SELECT 1 FROM owners WHERE email = ?", (email,)).fetchone():
        raise conflict("account_exists", "An AgentCard account already exists for this email.")
    owner_id = new_id("own")
    conn.execute(
        "INSERT INTO owners (id, email, deposit_balance_cents, card_limit, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (owner_id, email, TEST_DEPOSIT_CENTS, CARD_HOLD_LIMIT, isoformat(now)),
    )
    agent = create_agent(conn, owner_id, agent_name or f"agent-{secrets.token_hex(3)}", None, now)
    card_id = last4 = None
    if starter_card:
        from .cards import insert_card  # cards depend on agents, not the other way round

        card = insert_card(
            conn, owner_id, agent["id"], STARTER_DAILY_LIMIT_CENTS, None, [], None, now
        )
        card_id, last4 = card["id"], card["last4"]
    _, key = mint_key(conn, owner_id, now)
    return Provisioned(owner_id, agent["id"], card_id, last4, key)


def sign_up(
    conn: sqlite3.Connection, email: str, agent_name: str | None, now: datetime
) -> dict[str, Any]:
    if conn.execute("SELECT 1 FROM owners WHERE email = ?", (email,)).fetchone():
        raise conflict("account_exists", "An AgentCard account already exists for this email.")
    verification_id = new_id("ver")
    code = f"{secrets.randbelow(1_000_000):06d}"
    expires = now + CODE_TTL
    conn.execute(
        "INSERT INTO verifications (id, email, agent_name, code_hash, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (verification_id, email, agent_name, _code_hash(verification_id, code), isoformat(expires)),
    )
    # The sandbox has no mail: stderr is the human's inbox.
    inbox.warning("[sandbox inbox] AgentCard verification code for %s: %s", email, code)
    return {
        "verification_id": verification_id,
        "human_email": email,
        "expires_at": isoformat(expires),
        "message": "Verification code sent. Ask your human for the code, "
        "then call POST /v0/agent/verify.",
    }


def _code_hash(verification_id: str, code: str) -> str:
    return hashlib.sha256(f"{verification_id}:{code}".encode()).hexdigest()


def verify(
    conn: sqlite3.Connection, verification_id: str, code: str, now: datetime
) -> Provisioned | ApiError:
    """The new account, or (returned, not raised, so the attempt count commits) a wrong code."""
    row = conn.execute("SELECT * FROM verifications WHERE id = ?", (verification_id,)).fetchone()
    if row is None:
        raise not_found("verification", verification_id)
    if row["used_at"] is not None:
        raise invalid("verification_id", "This verification was already used.", "code_used")
    if isoformat(now) >= row["expires_at"]:
        raise invalid("otp_code", "This code has expired; sign up again.", "code_expired")
    if row["attempts"] >= MAX_CODE_ATTEMPTS:
        raise invalid("otp_code", "Too many wrong codes; sign up again.", "code_locked")
    if not hmac.compare_digest(row["code_hash"], _code_hash(verification_id, code)):
        conn.execute(
            "UPDATE verifications SET attempts = attempts + 1 WHERE id = ?", (verification_id,)
        )
        return invalid("otp_code", "That code is not right; ask your human again.", "code_invalid")
    conn.execute(
        "UPDATE verifications SET used_at = ? WHERE id = ?", (isoformat(now), verification_id)
    )
    return provision_owner(conn, row["email"], row["agent_name"], now, starter_card=True)


# --- agents ---------------------------------------------------------------------------------


def agent_view(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "status": row["status"],
        "created_at": row["created_at"],
    }


def create_agent(
    conn: sqlite3.Connection, owner_id: str, name: str, description: str | None, now: datetime
) -> dict[str, Any]:
    agent_id = new_id("agt")
    conn.execute(
        "INSERT INTO agents (id, owner_id, name, description, status, created_at) "
        "VALUES (?, ?, ?, ?, 'active', ?)",
        (agent_id, owner_id, name, description, isoformat(now)),
    )
    return get_agent(conn, owner_id, agent_id)


def agent_row(conn: sqlite3.Connection, owner_id: str, agent_id: str) -> sqlite3.Row:
    row = conn.execute(
        "SELECT * FROM agents WHERE id = ? AND owner_id = ? AND deleted_at IS NULL",
        (agent_id, owner_id),
    ).fetchone()
    if row is None:
        raise not_found("agent", agent_id)
    return row  # type: ignore[no-any-return]


def get_agent(conn: sqlite3.Connection, owner_id: str, agent_id: str) -> dict[str, Any]:
    return agent_view(agent_row(conn, owner_id, agent_id))


def list_agents(conn: sqlite3.Connection, owner_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM agents WHERE owner_id = ? AND deleted_at IS NULL ORDER BY id", (owner_id,)
    ).fetchall()
    return [agent_view(row) for row in rows]


def update_agent(
    conn: sqlite3.Connection, owner_id: str, agent_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    agent_row(conn, owner_id, agent_id)
    if "name" in fields and fields["name"] is None:
        raise invalid("name", "'name' cannot be null; omit it to leave it unchanged.")
    for column in ("name", "description"):
        if column in fields:
            conn.execute(f"UPDATE agents SET {column} = ? WHERE id = ?", (fields[column], agent_id))  # noqa: S608
    return get_agent(conn, owner_id, agent_id)


def set_agent_status(
    conn: sqlite3.Connection, owner_id: str, agent_id: str, status: str
) -> dict[str, Any]:
    agent_row(conn, owner_id, agent_id)
    conn.execute("UPDATE agents SET status = ? WHERE id = ?", (status, agent_id))
    return get_agent(conn, owner_id, agent_id)


def delete_agent(
    conn: sqlite3.Connection, owner_id: str, agent_id: str, now: datetime
) -> dict[str, Any]:
    """Deletes the agent and all its cards. Rows stay, so their ledgers remain readable."""
    agent_row(conn, owner_id, agent_id)
    stamp = isoformat(now)
    conn.execute(
        "UPDATE cards SET deleted_at = ? WHERE agent_id = ? AND deleted_at IS NULL",
        (stamp, agent_id),
    )
    conn.execute("UPDATE agents SET deleted_at = ? WHERE id = ?", (stamp, agent_id))
    return {"id": agent_id, "deleted": True}


def owner_view(conn: sqlite3.Connection, owner_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM owners WHERE id = ?", (owner_id,)).fetchone()
    return {
        "id": row["id"],
        "suspended": bool(row["suspended"]),
        "merchant_blocklist": json.loads(row["merchant_blocklist"]),
        "enabled_currencies": json.loads(row["enabled_currencies"]),
        "deposit_balance_cents": row["deposit_balance_cents"],
    }


def patch_owner(conn: sqlite3.Connection, owner_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The owner's merchant blocklist and enabled currencies (set in AgentCard's dashboard)."""
    for column in ("merchant_blocklist", "enabled_currencies"):
        if column in fields:
            if fields[column] is None:
                raise invalid(column, f"'{column}' cannot be null; omit it to leave it unchanged.")
            value = json.dumps(list(dict.fromkeys(fields[column])))
            conn.execute(f"UPDATE owners SET {column} = ? WHERE id = ?", (value, owner_id))  # noqa: S608
    return owner_view(conn, owner_id)


def set_owner_suspended(conn: sqlite3.Connection, owner_id: str, suspended: bool) -> dict[str, Any]:
    conn.execute("UPDATE owners SET suspended = ? WHERE id = ?", (int(suspended), owner_id))
    return owner_view(conn, owner_id)
