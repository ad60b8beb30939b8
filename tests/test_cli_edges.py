"""The edges a newcomer meets first (issue 14): the standalone sandbox's access log, one-line
errors from `demo`, options that do not apply to a transport, the help texts, and the swipe
command's categories. Run for real, as the console script in subprocesses."""

from __future__ import annotations

import argparse
import os
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from agentcard_mcp.categories import TAGS
from agentcard_mcp.cli import build_parser, serve
from agentcard_mcp.settings import Settings
from tests.test_cli import SCRIPT, _env, err, ledger, make_card, out, run_cli, serving

pytestmark = pytest.mark.anyio

ACCESS_LINE = re.compile(r'"(GET|POST) (.+?) HTTP/1\.1" (\d{3})')
TEST_PAN = "4111111111111111"  # a well-known test number: must come out masked


async def test_sandbox_serve_logs_one_masked_access_line_per_request_and_no_traceback(
    tmp_path: Path,
) -> None:
    paths = ["/v1/cards", f"/v1/cards/{TEST_PAN}", "/nowhere"]
    with serving(tmp_path / "home", tmp_path) as served:
        async with httpx.AsyncClient(base_url=served.base_url, timeout=10) as client:
            for path in paths:
                await client.get(path)
    stderr = "".join(served.stderr)
    access = [m for line in served.stderr if (m := ACCESS_LINE.search(line))]
    assert [m.group(3) for m in access] == ["401", "401", "404"], stderr
    assert access[1].group(2) == "/v1/cards/•••• 1111"
    assert "Traceback" not in stderr
    assert "Logging error" not in stderr
    assert TEST_PAN not in stderr + "".join(served.stdout)
    assert not ACCESS_LINE.search("".join(served.stdout))  # logs go to stderr, beside the rest


# --- demo: one line saying what to fix, exit 1 ------------------------------------------------


def remote_issuer(
    base_url: str, key: str = "ac_test_" + "n0t4r3alk3yf0rth1ss4ndb0x"
) -> dict[str, str]:
    return {"AGENTCARD_ISSUER": "agentcard", "AGENTCARD_API_KEY": key,
            "AGENTCARD_BASE_URL": base_url}  # fmt: skip


def one_line_failure(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 1, err(result)
    assert out(result) == ""
    lines = err(result).splitlines()
    assert len(lines) == 1, err(result)
    assert lines[0].startswith("agentcard-mcp demo: ")
    return lines[0]


async def test_demo_with_a_key_the_issuer_refuses_says_so_in_one_line(tmp_path: Path) -> None:
    with serving(tmp_path / "sandbox-home", tmp_path) as sandbox:
        result = await run_cli(
            "demo", home=tmp_path / "home", cwd=tmp_path, script=True,
            env=remote_issuer(sandbox.base_url),
        )  # fmt: skip
    line = one_line_failure(result)
    assert "issuer_auth_failed" in line
    assert "check AGENTCARD_API_KEY" in line
    assert "n0t4r3alk3y" not in line


async def test_demo_against_a_closed_port_names_the_url_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result = await run_cli(
        "demo", home=tmp_path / "home", cwd=tmp_path, script=True, env=remote_issuer(closed)
    )
    line = one_line_failure(result)
    assert f"issuer_unavailable: could not reach agentcard at {closed}" in line
    assert "AGENTCARD_BASE_URL" in line


# --- any other failure: one line, a traceback only when asked for ------------------------------


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_an_unexpected_failure_is_one_line_unless_debugging(
    tmp_path: Path, level: str
) -> None:
    not_a_database = tmp_path / "notes.db"  # a private regular file, but not SQLite
    not_a_database.write_bytes(b"not a database, " * 256)
    not_a_database.chmod(0o600)
    result = await run_cli(
        "sandbox", "swipe", "card_1", "500", "--merchant", "Delta", "--mcc", "travel",
        "--db", str(not_a_database), home=tmp_path / "home", cwd=tmp_path, script=True,
        env={"AGENTCARD_LOG_LEVEL": level},
    )  # fmt: skip
    assert result.returncode == 1
    if level == "DEBUG":
        assert "Traceback (most recent call last)" in err(result)
        return
    assert err(result).splitlines() == [
        "agentcard-mcp: DatabaseError: file is not a database "
        "(AGENTCARD_LOG_LEVEL=DEBUG shows the traceback)"
    ]


# --- Ctrl-C in a terminal ------------------------------------------------------------------------


def read_until(fd: int, wanted: bytes, seconds: float) -> bytes:
    """What the terminal shows until ``wanted`` appears (or the time is up, or it closes)."""
    seen = b""
    deadline = time.monotonic() + seconds
    while wanted not in seen and (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other side of the terminal closed
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_ctrl_c_in_a_terminal_ends_the_stdio_server_at_once_with_one_line(tmp_path: Path) -> None:
    terminal, tty = os.openpty()
    process = subprocess.Popen(
        [str(SCRIPT), "serve"], stdin=tty, stdout=tty, stderr=tty, cwd=tmp_path,
        env=_env(tmp_path / "home"),
    )  # fmt: skip
    os.close(tty)
    try:
        banner = read_until(terminal, b"Ctrl-C to stop.", 30)
        assert b"Ctrl-C to stop." in banner, banner
        process.send_signal(signal.SIGINT)  # what the terminal sends on Ctrl-C
        started = time.monotonic()
        assert process.wait(timeout=2) == 130
        assert time.monotonic() - started < 2
        after = read_until(terminal, b"\n", 2).decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(terminal)
    assert after.splitlines() == ["agentcard-mcp: stopped (Ctrl-C)."]


# --- serve: an option that does not apply to the transport is refused -----------------------


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--stateless"], "--stateless applies to --transport http, not stdio"),
        (["--transport", "sse", "--stateless"], "--stateless applies to --transport http, not sse"),
        (["--port", "9000"], "--port applies to --transport http or sse, not stdio"),
        (["--host", "0.0.0.0", "--port", "0"], "--host, --port apply to --transport http or sse"),
        (["--allowed-origin", "https://a.example"], "--allowed-origin applies to --transport http"),
        (["--console-port", "9000"], "--console-port applies only with --console"),
        (
            ["--transport", "http", "--console-port", "0"],
            "--console-port applies only with --console",
        ),
    ],
)
def test_serve_refuses_an_option_its_transport_has_no_use_for(
    options: list[str],
    said: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTCARD_HOME", str(tmp_path / "home"))
    # The command itself, in process (main would also set the process's logging up).
    assert serve.serve(build_parser().parse_args(["serve", *options])) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"agentcard-mcp: {said}"), lines[0]
    assert lines[0].endswith("leave it out.") or lines[0].endswith("leave them out.")
    assert not (tmp_path / "home").exists()  # refused before anything was opened


# --- sandbox swipe: categories as the tool takes them -------------------------------------------


async def test_swipe_translates_a_4_digit_mcc_as_simulate_purchase_does(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    card = await make_card(home / "sandbox.db", daily_limit_cents=5000)
    swipe = ["sandbox", "swipe", card, "500", "--merchant", "Delta"]
    airline = await run_cli(*swipe, "--mcc", "4511", home=home, cwd=tmp_path, script=True)
    assert airline.returncode == 0, err(airline)
    [row] = ledger(home / "sandbox.db")
    assert row["mcc"] == "travel"  # categories.tag_for_mcc("4511")

    unknown = await run_cli(*swipe, "--mcc", "0001", home=home, cwd=tmp_path, script=True)
    assert unknown.returncode == 2
    assert err(unknown).splitlines() == [
        "agentcard-mcp sandbox: invalid_params: unknown category '0001' in --mcc; use tags "
        f"from: {', '.join(TAGS)} (or a 4-digit MCC code in one of them)."
    ]
    assert len(ledger(home / "sandbox.db")) == 1  # refused before anything was asked


# --- help --------------------------------------------------------------------------------------


def help_of(*command: str) -> str:
    parser = build_parser()
    for name in command:  # down to the subcommand's own parser
        parser = next(
            action.choices[name]
            for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
        )
    return parser.format_help()


def test_help_lists_every_agentcard_setting_with_what_it_does() -> None:
    text = help_of()
    for name, field in Settings.model_fields.items():
        variable = f"  AGENTCARD_{name.upper()} "
        line = next(line for line in text.splitlines() if line.startswith(variable))
        assert field.description is not None
        assert field.description.split()[0] in line, line
    assert "AGENTCARD_LIVE              Exactly 1 allows live" in text


@pytest.mark.parametrize(
    ("command", "id_shape"),
    [(("keys", "revoke"), "key_…"), (("approvals", "approve"), "apr_…"),
     (("approvals", "deny"), "apr_…")],
)  # fmt: skip
def test_help_says_what_an_id_looks_like(command: tuple[str, ...], id_shape: str) -> None:
    assert id_shape in help_of(*command)
