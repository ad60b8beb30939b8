"""The operator's ``keys`` and ``serve --transport http|sse`` commands, as processes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from agentcard_mcp.keys import KEY_PATTERN
from agentcard_mcp.storage.sqlite.keys import SqliteKeyStore
from tests.server.stdio_session import SCRIPT, clean_env


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        env=clean_env(AGENTCARD_HOME=str(home)),
        cwd=home.parent,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.mark.anyio
async def test_create_shows_the_key_once_then_list_and_revoke(tmp_path: Path) -> None:
    home = tmp_path / "home"
    created = run(home, "keys", "create", "--name", "crewai prod", "--scope", "cards:read",
                  "--rate", "120")  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert KEY_PATTERN.fullmatch(key)  # stdout is the key alone, for capture
    assert "only time" in created.stderr
    key_id = re.search(r"key_[a-z0-9]{12}", created.stderr).group()  # type: ignore[union-attr]

    listed = run(home, "keys", "list")
    assert listed.returncode == 0
    assert key not in listed.stdout
    assert key[9:] not in listed.stdout
    row = next(line for line in listed.stdout.splitlines() if key_id in line)
    for shown in (key[:9], "crewai prod", "cards:read", "120/min", "never"):
        assert shown in row

    assert run(home, "keys", "revoke", key_id).returncode == 0
    store = SqliteKeyStore(home)
    try:
        assert await store.find(key) is None
        assert (await store.get(key_id)).revoked_at is not None
    finally:
        await store.aclose()
    again = run(home, "keys", "revoke", key_id)
    assert again.returncode == 2
    assert "already revoked" in again.stderr
    assert run(home, "keys", "revoke", "key_nope").returncode == 2


@pytest.mark.anyio
async def test_allow_in_band_approval_is_set_on_that_key_only_and_listed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    trusted = run(home, "keys", "create", "--name", "desktop", "--allow-in-band-approval")
    plain = run(home, "keys", "create", "--name", "framework")
    assert trusted.returncode == plain.returncode == 0, trusted.stderr + plain.stderr
    assert "in-band approval" in trusted.stderr
    assert "in-band approval" not in plain.stderr

    store = SqliteKeyStore(home)
    try:
        allowed = await store.find(trusted.stdout.strip())
        default = await store.find(plain.stdout.strip())
    finally:
        await store.aclose()
    assert allowed is not None
    assert allowed.allow_in_band_approval
    assert default is not None
    assert not default.allow_in_band_approval

    listed = run(home, "keys", "list").stdout.splitlines()
    assert "in-band approval" in listed[0]
    rows = {line.split()[0]: line.split() for line in listed[1:]}
    assert "allowed" in rows[allowed.id]
    assert "allowed" not in rows[default.id]


def test_bad_key_options_exit_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(home, "keys", "create", "--name", "x", "--rate", "45").returncode == 2
    assert run(home, "keys", "create", "--name", "x", "--scope", "admin").returncode == 2
    assert run(home, "keys", "create").returncode == 2  # --name is required


def test_serving_a_public_address_without_keys_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    refused = run(home, "serve", "--transport", "http", "--host", "0.0.0.0",
                  "--allowed-host", "cards.example:*")  # fmt: skip
    assert refused.returncode == 2
    assert "keys create" in refused.stderr
    assert "cards.example:*" in refused.stderr


def test_serve_help_names_the_http_options(tmp_path: Path) -> None:
    shown = run(tmp_path / "home", "serve", "--help")
    assert shown.returncode == 0
    for option in ("--transport", "--host", "--port", "--stateless", "--allowed-host",
                   "--allowed-origin", "http", "sse"):  # fmt: skip
        assert option in shown.stdout
