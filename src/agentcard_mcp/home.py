"""The home (``AGENTCARD_HOME``, default ``~/.agentcard-mcp``) and the policy file: trusted only
when no other user can change them.

Whoever can write the home can plant a ``policy.toml`` that allows any spending, a ``-wal`` file
that SQLite replays into the budget, or a symlink that turns our next write into a write to
another file of the operator's. So every command that opens the home, and ``create_server`` for
in-process users, refuses to start (``UnsafeHome``, an ``invalid_params`` error naming the path
and the fix) when:

- the home, or the policy file, is owned by a user other than the one running the server (root
  is trusted too: it can change anything anyway, and a root-owned read-only policy is the way to
  keep it out of the service user's reach);
- either is writable by the group or by everyone (``chmod go-w``); the policy file's folder
  likewise, unless it has the sticky bit (``/tmp``), where others cannot replace our files;
- a file the server creates in the home (``STATE_FILES``, with SQLite's ``-wal``, ``-shm`` and
  ``-journal``) is a symlink or not a regular file. ``private_files`` checks each file again
  when it opens it; this check only makes a planted link stop the server before it serves.

The policy file may itself be a symlink (the operator's own dotfiles): it is read through one
descriptor whose owner and mode are checked, so the check and the read see the same file.
"""

from __future__ import annotations

import os
import pwd
import shlex
import stat
from pathlib import Path

from .errors import InvalidParams

__all__ = [
    "SQLITE_SIDE_FILES",
    "STATE_FILES",
    "UnsafeHome",
    "check_home",
    "ensure_home",
    "read_trusted",
    "refuse_link",
]

# Every file the server creates in the home: storage/sqlite/ (budget, approvals, keys), the
# audit trail, the embedded sandbox's database and its key file. tests/test_home.py checks
# that a served home holds no other file.
STATE_FILES = ("approvals.db", "budget.db", "keys.db", "audit.jsonl", "sandbox.db", "sandbox.key")
# The files SQLite makes beside a database, by path and following symlinks.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class UnsafeHome(InvalidParams):
    """The home or the policy file could be changed by someone else; the message names the path
    and the command that fixes it."""


def ensure_home(home: Path) -> Path:
    """The home, created 0700 if missing, then checked (see the module docstring)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_home(home)
    return home


def check_home(home: Path) -> None:
    """Refuses a home someone else could write, or one with a link planted at one of the files
    the server creates. A home that does not exist yet is fine: it will be made private."""
    try:
        info = os.stat(home)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeHome(f"the home {home} is not a directory; set AGENTCARD_HOME to a folder.")
    _refuse_others(f"the home {home}", home, info)
    for name in STATE_FILES:
        refuse_link(home / name)
        if name.endswith(".db"):
            for side in SQLITE_SIDE_FILES:
                refuse_link(home / f"{name}{side}")


def refuse_link(path: Path) -> None:
    """Refuses ``path`` if it exists and is a symlink or anything but a regular file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeHome(
            f"{path} is a symbolic link, and the server never opens its files through one: "
            f"remove it (`rm {shlex.quote(str(path))}`), or move the file it points to there."
        )
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeHome(f"{path} is not a regular file; move it out of the home.")


def read_trusted(path: Path) -> bytes:
    """The bytes of the operator's policy file, read only if no other user could have written
    it. ``OSError`` (no such file, a folder) is the caller's to describe."""
    for folder in {path.parent, Path(os.path.realpath(path)).parent}:
        _refuse_others(f"the policy file's folder {folder}", folder, os.stat(folder), sticky=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        _refuse_others(f"the policy file {path}", path, os.fstat(fd))
        return file.read()


def _refuse_others(what: str, path: Path, info: os.stat_result, *, sticky: bool = False) -> None:
    quoted = shlex.quote(str(path))
    me = os.geteuid()
    if info.st_uid not in (me, 0):
        raise UnsafeHome(
            f"{what} belongs to {_user(info.st_uid)}, not to {_user(me)} who runs the server; "
            f"run `chown {_user(me)} {quoted}` (as root) or use one of your own."
        )
    if sticky and info.st_mode & stat.S_ISVTX:
        return  # others may write the folder, but not replace a file they do not own
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeHome(
            f"{what} is writable by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"run `chmod go-w {quoted}`."
        )


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
