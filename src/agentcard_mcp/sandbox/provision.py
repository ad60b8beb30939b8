"""First start: an owner, a starter agent and a test key, with the key in a private file.

The database keeps only the key's hash, so the plaintext lives in one place: a JSON file next
to the database (``sandbox.db`` -> ``sandbox.key``), mode 0600, replaced atomically. The server
reads it to talk to the embedded sandbox; the operator reads it to use the API by hand.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

from . import accounts
from .clock import Clock, system_clock
from .errors import ApiError
from .store import Store

__all__ = ["OPERATOR_EMAIL", "Credentials", "key_file_for", "provision", "read_credentials"]

OPERATOR_EMAIL = "operator@sandbox.invalid"


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str
    owner_id: str
    agent_id: str

    def __repr__(self) -> str:  # the key must never reach a log through a repr
        return f"Credentials(owner_id={self.owner_id!r}, agent_id={self.agent_id!r})"


def key_file_for(db_path: Path) -> Path:
    return db_path.with_suffix(".key")


def provision(store: Store, db_path: Path, clock: Clock = system_clock) -> Credentials:
    """The operator's credentials, creating the owner, agent and key on first start."""
    key_file = key_file_for(db_path)
    existing = read_credentials(db_path)
    if existing is not None and store.read_sync(lambda c: _usable(c, existing)):
        return existing
    credentials = store.transaction_sync(lambda c: _create(c, clock))
    _write_private(key_file, json.dumps(asdict(credentials), indent=2) + "\n")
    return credentials


def read_credentials(db_path: Path) -> Credentials | None:
    """The operator's credentials from the key file next to ``db_path``, if there is one."""
    key_file = key_file_for(db_path)
    try:
        # Never through a symlink: a planted one would hand us someone else's key. Such a file
        # reads as missing, and provision() replaces the link itself with a new key file.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(key_file, flags), encoding="utf-8") as file:
            return Credentials(**json.loads(file.read()))
    except (OSError, ValueError, TypeError):
        return None


def _usable(conn: sqlite3.Connection, credentials: Credentials) -> bool:
    try:
        owner = accounts.authenticate(conn, f"Bearer {credentials.api_key}")
    except ApiError:
        return False
    return owner == credentials.owner_id


def _create(conn: sqlite3.Connection, clock: Clock) -> Credentials:
    now = clock()
    owner = conn.execute("SELECT id FROM owners WHERE email = ?", (OPERATOR_EMAIL,)).fetchone()
    if owner is None:
        made = accounts.provision_owner(
            conn, OPERATOR_EMAIL, "starter-agent", now, starter_card=False
        )
        return Credentials(made.api_key, made.owner_id, made.agent_id)
    agent = conn.execute(
        "SELECT id FROM agents WHERE owner_id = ? AND deleted_at IS NULL ORDER BY id LIMIT 1",
        (owner["id"],),
    ).fetchone()
    agent_id = (
        agent["id"]
        if agent
        else accounts.create_agent(conn, owner["id"], "starter-agent", None, now)["id"]
    )
    _, key = accounts.mint_key(conn, owner["id"], now)
    return Credentials(key, owner["id"], agent_id)


def _write_private(path: Path, text: str) -> None:
    """Writes ``text`` to a new 0600 file and renames it over ``path``, so no reader ever sees
    a half-written key and the key is never readable by others, even for a moment."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
