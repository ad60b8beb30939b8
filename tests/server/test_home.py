"""The home and the policy file (issue 12, item 2): refused when another user could change them,
and no file of the home ever created, written or chmodded through a symlink — by the real
command line (exit 2, one line naming the path and the fix) and by ``create_server`` for
in-process users."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from mcp import Client

from agentcard_mcp.audit import AuditLog
from agentcard_mcp.home import SQLITE_SIDE_FILES, STATE_FILES, UnsafeHome
from agentcard_mcp.private_files import connect_private
from agentcard_mcp.sandbox import Store, provision
from agentcard_mcp.sandbox.provision import read_credentials
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals
from agentcard_mcp.storage.sqlite.budget import SqliteBudget
from agentcard_mcp.storage.sqlite.keys import SqliteKeyStore
from tests.server.stdio_session import SCRIPT, clean_env

pytestmark = pytest.mark.anyio

ROOT = os.geteuid() == 0
OTHER_UID = 65534  # "nobody": any user but the one running the tests
needs_root = pytest.mark.skipif(
    not ROOT, reason="giving a file to another user needs root (CI runs the suite as root)"
)
# A policy someone else planted: it would allow a $9 000/day card.
PLANTED_POLICY = "max_card_daily_limit_cents = 900000\nmax_total_daily_cents = 900000\n"
SIDE_FILES = [f"{name}{side}" for name in STATE_FILES if name.endswith(".db")
              for side in SQLITE_SIDE_FILES]  # fmt: skip
EVERY_FILE = [*STATE_FILES, *SIDE_FILES]


# --- helpers ------------------------------------------------------------------------------------


@dataclass
class Planted:
    """A symlink in the home pointing outside it: at an existing file of the operator's, or at
    a path where nothing may ever appear."""

    link: Path
    outside: Path
    target: Path

    def assert_untouched(self) -> None:
        assert self.link.is_symlink(), "the link itself is the operator's to remove"
        notes = self.outside / "notes.txt"
        assert notes.read_bytes() == b"the operator's own file\n"
        assert stat.S_IMODE(notes.stat().st_mode) == 0o644, "chmodded through the link"
        assert sorted(os.listdir(self.outside)) == ["notes.txt"], "a file appeared outside"


def plant(home: Path, name: str, *, dangling: bool) -> Planted:
    outside = home.parent / "operator"
    outside.mkdir(exist_ok=True)
    notes = outside / "notes.txt"
    notes.write_bytes(b"the operator's own file\n")
    notes.chmod(0o644)
    home.mkdir(mode=0o700, exist_ok=True)
    target = outside / "planted" if dangling else notes
    (home / name).symlink_to(target)
    return Planted(home / name, outside, target)


def private_home(home: Path, mode: int = 0o700) -> Path:
    home.mkdir(exist_ok=True)
    home.chmod(mode)  # chmod, not mkdir(mode): the umask would take the write bits away
    return home


async def cli(home: Path, *args: str, **env: str) -> tuple[int, str, str]:
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [str(SCRIPT), *args],
            env=clean_env(AGENTCARD_HOME=str(home), **env),
            cwd=home.parent,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# --- the command line ---------------------------------------------------------------------------

COMMANDS = [
    [],  # serve on stdio
    ["console", "--port", "0"],
    ["approvals", "list"],
    ["keys", "list"],
    ["audit", "tail"],
    ["policy", "show"],
    ["sandbox", "swipe", "card_x", "100", "--merchant", "Cafe", "--mcc", "restaurants"],
    ["demo"],
]


async def test_every_command_refuses_a_home_others_can_write_and_creates_nothing_in_it(
    tmp_path: Path,
) -> None:
    home = private_home(tmp_path / "home", 0o777)
    answers: dict[str, tuple[int, str, str]] = {}

    async def run(command: list[str]) -> None:
        answers[" ".join(command) or "serve"] = await cli(home, *command)

    async with anyio.create_task_group() as group:
        for command in COMMANDS:
            group.start_soon(run, command)
    for name, (status, out, err) in answers.items():
        assert status == 2, name
        assert out == "", name
        line = one_line(err)
        assert f"the home {home} is writable by other users (mode 0777)" in line, name
        assert f"run `chmod go-w {home}`" in line, name
    assert os.listdir(home) == []
    assert stat.S_IMODE(home.stat().st_mode) == 0o777  # the operator's to fix, not ours


async def test_a_policy_file_others_can_write_stops_the_server(tmp_path: Path) -> None:
    home = private_home(tmp_path / "home")
    policy = tmp_path / "policy.toml"
    policy.write_text(PLANTED_POLICY)
    policy.chmod(0o666)
    status, out, err = await cli(home, AGENTCARD_POLICY_FILE=str(policy))
    assert (status, out) == (2, "")
    line = one_line(err)
    assert f"the policy file {policy} is writable by other users (mode 0666)" in line
    assert f"run `chmod go-w {policy}`" in line


@needs_root
async def test_a_home_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    home = private_home(tmp_path / "home")
    os.chown(home, OTHER_UID, -1)
    status, out, err = await cli(home, "keys", "list")
    assert (status, out) == (2, "")
    line = one_line(err)
    assert f"the home {home} belongs to " in line
    assert "who runs the server; run `chown " in line
    assert line.endswith(f" {home}` (as root) or use one of your own.")
    assert os.listdir(home) == []


async def test_a_symlink_at_keys_db_is_refused_and_its_target_never_chmodded(
    tmp_path: Path,
) -> None:
    planted = plant(tmp_path / "home", "keys.db", dangling=False)
    status, out, err = await cli(planted.link.parent, "keys", "create", "--name", "ci")
    assert (status, out) == (2, "")  # no key was made, so none is printed
    assert f"{planted.link} is a symbolic link" in one_line(err)
    planted.assert_untouched()


# --- in process: create_server ------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o720, 0o702])
def test_create_server_refuses_a_home_the_group_or_others_can_write(
    settings: Settings, mode: int
) -> None:
    private_home(settings.home, mode)
    with pytest.raises(UnsafeHome, match="writable by other users") as refused:
        create_server(settings)
    assert refused.value.code == "invalid_params"
    assert f"chmod go-w {settings.home}" in refused.value.message


def test_create_server_makes_a_missing_home_private_and_accepts_one_others_may_read(
    settings: Settings,
) -> None:
    create_server(settings)
    assert stat.S_IMODE(settings.home.stat().st_mode) == 0o700
    settings.home.chmod(0o755)  # readable is fine: every file in it is 0600
    create_server(settings)


@needs_root
def test_create_server_refuses_a_home_owned_by_another_user(settings: Settings) -> None:
    os.chown(private_home(settings.home), OTHER_UID, -1)
    with pytest.raises(UnsafeHome, match=re.escape(f"the home {settings.home} belongs to ")):
        create_server(settings)


@pytest.mark.parametrize("where", ["home", "configured"])
def test_a_planted_policy_others_can_write_is_refused(
    settings: Settings, tmp_path: Path, where: str
) -> None:
    private_home(settings.home)
    policy = settings.home / "policy.toml" if where == "home" else tmp_path / "policy.toml"
    policy.write_text(PLANTED_POLICY)
    policy.chmod(0o664)
    configured = settings.model_copy(update={"policy_file": None if where == "home" else policy})
    with pytest.raises(UnsafeHome, match=re.escape(f"the policy file {policy} is writable")):
        create_server(configured)


@needs_root
def test_a_policy_owned_by_another_user_is_refused_even_through_a_symlink(
    settings: Settings, tmp_path: Path
) -> None:
    policy = tmp_path / "theirs.toml"
    policy.write_text(PLANTED_POLICY)
    os.chown(policy, OTHER_UID, -1)
    link = private_home(settings.home) / "policy.toml"
    link.symlink_to(policy)
    with pytest.raises(UnsafeHome, match=re.escape(f"the policy file {link} belongs to ")):
        create_server(settings.model_copy(update={"policy_file": None}))


@pytest.mark.parametrize(("mode", "refused"), [(0o777, True), (0o1777, False)])
def test_a_policy_in_a_folder_others_can_write_is_refused_unless_the_folder_is_sticky(
    settings: Settings, tmp_path: Path, mode: int, refused: bool
) -> None:
    folder = private_home(tmp_path / "shared", mode)
    policy = folder / "policy.toml"
    policy.write_text("max_card_daily_limit_cents = 1500\n")
    configured = settings.model_copy(update={"policy_file": policy})
    if refused:  # another user could replace the file; in a sticky folder they cannot
        says = f"the policy file's folder {folder} is writable"
        with pytest.raises(UnsafeHome, match=re.escape(says)):
            create_server(configured)
    else:
        create_server(configured)


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
@pytest.mark.parametrize("name", EVERY_FILE)
def test_create_server_refuses_a_symlink_planted_at_any_file_of_the_home(
    settings: Settings, name: str, dangling: bool
) -> None:
    planted = plant(settings.home, name, dangling=dangling)
    with pytest.raises(UnsafeHome, match=re.escape(f"{name} is a symbolic link")):
        create_server(settings)
    planted.assert_untouched()


# --- in process: a link that appears after create_server, or while a file is opened -------------


@pytest.mark.parametrize("name", ["approvals.db-wal", "sandbox.db", "audit.jsonl"])
async def test_a_symlink_planted_after_create_server_is_refused_when_serving_starts(
    settings: Settings, name: str
) -> None:
    server = create_server(settings)  # the home is checked, and clean, here
    planted = plant(settings.home, name, dangling=name.endswith("-wal"))
    says = re.escape(f"{name} is a symbolic link")
    with anyio.fail_after(30), pytest.raises(UnsafeHome, match=says):
        async with Client(server):
            pass
    planted.assert_untouched()


def _open_budget(home: Path) -> Callable[[], object]:
    return lambda: SqliteBudget(home, "sandbox:test")


OPENERS: dict[str, Callable[[Path], Callable[[], object]]] = {
    "budget.db": _open_budget,
    "approvals.db": lambda home: lambda: SqliteApprovals(home),
    "keys.db": lambda home: lambda: SqliteKeyStore(home),
    "sandbox.db": lambda home: lambda: Store(home / "sandbox.db"),
    "audit.jsonl": lambda home: lambda: AuditLog(home / "audit.jsonl"),
}


@pytest.mark.parametrize(
    "name",
    ["budget.db", "budget.db-shm", "approvals.db-wal", "approvals.db-journal", "keys.db",
     "keys.db-wal", "sandbox.db", "sandbox.db-wal", "sandbox.db-shm", "audit.jsonl"],
)  # fmt: skip
def test_each_store_refuses_a_symlink_at_its_files_when_it_opens_them(
    tmp_path: Path, name: str
) -> None:
    """What stops a link planted after the start check: every open checks again."""
    home = tmp_path / "home"
    planted = plant(home, name, dangling=not name.endswith("-shm"))
    opener = OPENERS[name.split("-")[0]](home)
    with pytest.raises(UnsafeHome, match=re.escape(f"{name} is a symbolic link")):
        opener()
    planted.assert_untouched()


async def test_links_at_the_audit_log_and_key_file_are_not_followed_while_serving(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with anyio.fail_after(30):
        async with Client(create_server(settings)) as client:
            audit = plant(settings.home, "audit.jsonl", dangling=False)
            result = await client.call_tool("get_limits", {})
    assert not result.is_error  # the call stands; its record is refused, and that is logged
    assert "audit.jsonl is a symbolic link" in caplog.text
    audit.assert_untouched()


def test_a_link_at_the_sandbox_key_file_is_replaced_never_read_or_followed(
    tmp_path: Path,
) -> None:
    planted = plant(tmp_path / "home", "sandbox.key", dangling=True)
    db = tmp_path / "home" / "sandbox.db"
    store = Store(db)
    try:
        credentials = provision(store, db)
    finally:
        store.close()
    assert not planted.link.is_symlink()  # the link itself was replaced by our own file
    assert stat.S_IMODE(planted.link.stat().st_mode) == 0o600
    assert read_credentials(db) == credentials
    assert sorted(os.listdir(planted.outside)) == ["notes.txt"]


async def test_a_served_home_holds_only_the_known_files_each_private(settings: Settings) -> None:
    with anyio.fail_after(30):
        async with Client(create_server(settings)) as client:
            await client.call_tool("get_limits", {})  # the audit log is made at a first record
            modes = {
                name: stat.S_IMODE((settings.home / name).stat().st_mode)
                for name in os.listdir(settings.home)
            }
    # A new file the server makes must join STATE_FILES, which the start check covers.
    assert set(modes) <= set(EVERY_FILE), set(modes) - set(EVERY_FILE)
    assert set(STATE_FILES) <= set(modes)
    assert set(modes.values()) == {0o600}, modes
    assert stat.S_IMODE(settings.home.stat().st_mode) == 0o700


# --- opening one SQLite file (private_files.connect_private) ------------------------------------


def _swap_for_link(path: Path, target: Path) -> Callable[[sqlite3.Connection], None]:
    def set_up(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode = WAL")
        path.rename(path.with_name("moved.db"))
        path.symlink_to(target)

    return set_up


def _swap_for_file(path: Path, _: Path) -> Callable[[sqlite3.Connection], None]:
    def set_up(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode = WAL")
        path.rename(path.with_name("moved.db"))
        path.write_bytes(b"")

    return set_up


def _plant_journal(path: Path, target: Path) -> Callable[[sqlite3.Connection], None]:
    def set_up(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode = WAL")
        path.with_name(f"{path.name}-journal").symlink_to(target)

    return set_up


@pytest.mark.parametrize(
    ("race", "says"),
    [
        (_swap_for_link, "x.db is a symbolic link"),
        (_swap_for_file, "x.db was replaced while it was being opened"),
        (_plant_journal, "x.db-journal is a symbolic link"),
    ],
    ids=["db-swapped-for-a-link", "db-swapped-for-another-file", "journal-link-appears"],
)
def test_a_link_that_appears_while_sqlite_opens_the_file_is_refused_and_the_file_closed(
    tmp_path: Path,
    race: Callable[[Path, Path], Callable[[sqlite3.Connection], None]],
    says: str,
) -> None:
    planted = plant(tmp_path / "home", "unused", dangling=False)
    path = tmp_path / "home" / "x.db"
    with pytest.raises(UnsafeHome, match=re.escape(says)):
        connect_private(path, race(path, planted.target), timeout=1)
    planted.assert_untouched()
    if os.path.isdir("/proc/self/fd"):  # Linux: the connection was closed, not leaked
        open_files = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
        assert not any(name.startswith(str(tmp_path)) for name in open_files)


async def test_an_existing_database_open_to_others_is_tightened_on_its_descriptor(
    tmp_path: Path,
) -> None:
    (tmp_path / "keys.db").write_bytes(b"")
    (tmp_path / "keys.db").chmod(0o644)
    store = SqliteKeyStore(tmp_path)
    await store.aclose()
    assert stat.S_IMODE((tmp_path / "keys.db").stat().st_mode) == 0o600
