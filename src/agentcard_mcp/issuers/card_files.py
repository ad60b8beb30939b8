"""Card details an issuer returns in full, written for the operator and for nobody else.

ClawdCards answers a new card with its number, CVV and expiry, once (they cannot be read
again); Proxy does the same for a card whose ``credentialExposure`` is ``rawPan``. None of it
may reach the model, a log line, an error text or the audit. The adapter takes the details
out of the issuer's answer the moment it arrives (``take_details``), hands them straight to
``write``, and keeps only the card's last four digits and the file's path:

    <home>/cards/<card_id>.json      mode 0600, in a directory of mode 0700

The file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` relative to the directory opened
with ``O_NOFOLLOW``: an existing file (or a link planted in its place) is never overwritten or
followed, and a ``cards`` directory that is a symbolic link, or that others may read, is
refused. ``check_dir`` runs the directory checks before the issuer is asked for a card, so a
bad home fails before any card exists.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import InvalidParams
from ..home import UnsafeHome

__all__ = [
    "SENSITIVE_FIELDS",
    "CardDetails",
    "check_dir",
    "existing",
    "masked",
    "note",
    "take_details",
    "write",
]

# Field names (compared without case, "_" or "-") under which issuers send card details:
# ClawdCards' number/cvv/expiry, Proxy's pan/cvv/expirationMonth/expirationYear, and the
# spellings of other issuers' "details" endpoints.
SENSITIVE_FIELDS = frozenset(
    {
        "number", "pan", "cardnumber", "rawpan", "cvv", "cvc", "cvv2", "cvc2", "securitycode",
        "expiry", "expiration", "exp", "expmonth", "expyear", "expirationmonth",
        "expirationyear", "expirationdate",
    }
)  # fmt: skip
# Objects that hold nothing but card details (ClawdCards' "card", a "details" wrapper).
_DETAIL_OBJECTS = frozenset({"card", "details", "credentials", "credential", "carddetails"})
_NUMBER_FIELDS = frozenset({"number", "pan", "cardnumber", "rawpan"})
_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def _key(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


class CardDetails:
    """A card's details on their way to the operator's file. Its ``repr`` and ``str`` show
    only the last four digits, so a traceback or a careless log line cannot spill them."""

    __slots__ = ("_fields", "last4")

    def __init__(self, fields: Mapping[str, Any], last4: str | None) -> None:
        self._fields = dict(fields)
        self.last4 = last4 or _last4(self._fields)

    def __repr__(self) -> str:
        return f"CardDetails({masked(self.last4)})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._fields)

    @property
    def has_number(self) -> bool:
        """Whether the card's number is among them (an expiry alone opens nothing)."""
        return any(_key(name) in _NUMBER_FIELDS for name in self._fields)

    def clear(self) -> None:
        self._fields.clear()


def _last4(fields: Mapping[str, Any]) -> str | None:
    for name, value in fields.items():
        if _key(name) in _NUMBER_FIELDS:
            digits = "".join(c for c in str(value) if c.isdigit())
            if len(digits) >= 4:
                return digits[-4:]
    return None


def masked(last4: str | None) -> str:
    """The one way a card is shown: ``•••• 4242``."""
    return f"•••• {last4}" if last4 else "••••"


def note(path: Path, last4: str | None) -> str:
    """What a tool result says of a card whose details are in a card file."""
    return f"Card details ({masked(last4)}) are in {path}, for the operator only."


def existing(home: Path | None, card_id: str) -> Path | None:
    """The card file of ``card_id``, if one was written."""
    if home is None or not _SAFE_ID.match(card_id):
        return None
    path = home / "cards" / f"{card_id}.json"
    return path if path.is_file() and not path.is_symlink() else None


def take_details(raw: dict[str, Any], last4: str | None = None) -> CardDetails:
    """Removes every card detail from the issuer's answer ``raw`` (in place, at the top level
    and in detail objects such as ClawdCards' ``card``) and returns them. What is left in
    ``raw`` is safe to translate into a ``Card``."""
    taken: dict[str, Any] = {}
    for name in list(raw):
        if _key(name) in SENSITIVE_FIELDS:
            taken[name] = raw.pop(name)
        elif _key(name) in _DETAIL_OBJECTS and isinstance(raw[name], dict):
            inner = raw[name]
            for field in list(inner):
                if _key(field) in SENSITIVE_FIELDS:
                    taken[field] = inner.pop(field)
    return CardDetails(taken, last4)


def check_dir(home: Path) -> Path:
    """``<home>/cards``, created 0700 if missing; refused (``home.UnsafeHome``: invalid_params
    naming the path) when it is a symbolic link, not a directory, not ours, or open to others."""
    directory = home / "cards"
    with contextlib.suppress(FileExistsError):  # a link or a file in its place: refused below
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeHome(
            f"{directory} is a symbolic link; card files are never written through one. Make "
            "it a real directory (mode 0700)."
        )
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeHome(f"{directory} is not a directory; card files go there.")
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise UnsafeHome(
            f"{directory} must belong to this user with mode 0700 (it holds card details); "
            f"fix it with: chmod 700 {directory}"
        )
    return directory


def write(home: Path, card_id: str, issuer: str, details: CardDetails,
          extra: Iterable[tuple[str, Any]] = ()) -> Path:  # fmt: skip
    """Writes ``details`` to ``<home>/cards/<card_id>.json`` (see the module docstring) and
    clears them; the path written. An OSError names the path and its kind, never the details."""
    if not _SAFE_ID.match(card_id):
        raise InvalidParams(f"{issuer} answered a card id that cannot name a file; not saved.")
    directory = check_dir(home)
    record = {
        "issuer": issuer,
        "card_id": card_id,
        "last4": details.last4,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **dict(extra),
        **details._fields,
    }
    payload = json.dumps(record, indent=2).encode()
    del record
    details.clear()
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(f"{card_id}.json", flags, 0o600, dir_fd=dir_fd)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask said
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
        del payload
    return directory / f"{card_id}.json"
