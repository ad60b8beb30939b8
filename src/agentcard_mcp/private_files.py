"""Opening the files of the home: created 0600, never through a symlink, never chmodded by path.

A symlink planted where one of our files will be must not turn our write, our ``chmod`` or
SQLite's into one on a file of the attacker's choosing. ``home.check_home`` refuses such links
when a command starts; the functions here check again at every open, because a link can appear
later:

- ``open_private`` opens with ``O_NOFOLLOW`` (a link is refused, not followed), checks the
  descriptor is a regular file and tightens its mode with ``fchmod`` on that descriptor.
- ``connect_private``: SQLite opens by path and follows links, for the database and for the
  ``-wal``, ``-shm`` and ``-journal`` files it makes beside it (and gives a new one the
  database's mode with ``fchmod`` through the link). So the database is created first
  (``O_CREAT | O_EXCL | O_NOFOLLOW``, 0600) or found to be a regular file, the side files are
  refused if they are links, and once SQLite has opened everything the same checks run again,
  with the database's inode compared to the one seen before: a link that appeared in between
  closes the connection and refuses.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

from .home import SQLITE_SIDE_FILES, UnsafeHome, refuse_link

__all__ = ["connect_private", "open_private", "open_private_read"]


def open_private(path: Path, flags: int = os.O_RDWR) -> int:
    """A descriptor on ``path`` (created 0600 if missing) with ``flags``; ``UnsafeHome`` if
    ``path`` is a symlink or not a regular file. The caller closes it."""
    flags |= os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = _open(path, flags, 0o600)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeHome(f"{path} is not a regular file; move it out of the home.")
        if info.st_mode & 0o077:
            os.fchmod(fd, 0o600)  # on the descriptor: a path could be swapped for a link
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private_read(path: Path) -> int:
    """A read-only descriptor on an existing ``path``, never through a symlink."""
    return _open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)


def connect_private(
    path: Path, setup: Callable[[sqlite3.Connection], object], *, timeout: float
) -> sqlite3.Connection:
    """A connection to the SQLite database ``path`` (created 0600 if missing), ``setup`` run on
    it (journal mode, pragmas, schema) before the files are checked again."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _refuse_side_links(path)
    identity = _create_or_check(path)
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=timeout
    )
    try:
        setup(conn)
        _refuse_side_links(path)
        refuse_link(path)
        if _identity(os.lstat(path)) != identity:
            raise UnsafeHome(f"{path} was replaced while it was being opened; start again.")
    except BaseException:
        conn.close()
        raise
    return conn


def _create_or_check(path: Path) -> tuple[int, int]:
    """Creates the database file 0600 (``O_EXCL``: never through a link), or checks the one
    there is a regular file; its (device, inode). An existing file is opened here only when its
    mode needs tightening: closing our descriptor of a file this process's SQLite already has
    open would drop SQLite's POSIX locks on it, and the first open in a process has tightened
    it before SQLite opens it."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:  # a link there, even a dangling one, is an existing file too
        refuse_link(path)
        info = os.lstat(path)
        if info.st_mode & 0o077:
            os.close(open_private(path))
        return _identity(info)
    try:
        return _identity(os.fstat(fd))
    finally:
        os.close(fd)


def _refuse_side_links(path: Path) -> None:
    for side in SQLITE_SIDE_FILES:
        refuse_link(path.with_name(path.name + side))


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _open(path: Path, flags: int, mode: int = 0o600) -> int:
    try:
        return os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # what O_NOFOLLOW answers for a link
            refuse_link(path)  # raises, naming the path and the fix
        raise
