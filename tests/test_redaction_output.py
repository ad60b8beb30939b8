"""Redaction where the operator reads (DESIGN §6): every log record — ours, the SDK's, httpx's,
the root's, tracebacks included — and what the operator commands print."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentcard_mcp.approvals import approvals_command
from agentcard_mcp.audit import AuditLog, audit_command
from agentcard_mcp.redaction import RedactingFilter, install_log_redaction
from agentcard_mcp.storage.sqlite.approvals import SqliteApprovals
from agentcard_mcp.storage.sqlite.audit import JsonlAudit
from tests.server.stdio_session import SCRIPT, clean_env

PAN = "4111111111111111"
SPACED = "4111 1111 1111 1111"
SECRET = "ac_live_" + "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6"


def readable(text: str) -> bool:
    """Whether the PAN or the key can be read back from ``text``."""
    digits = "".join(ch for ch in text if ch.isdigit())
    return PAN in digits or SECRET in text


@pytest.fixture
def root_output() -> Iterator[io.StringIO]:
    """Everything that reaches a handler on the root logger, formatted with tracebacks."""
    install_log_redaction()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.mark.parametrize(
    "logger_name", ["agentcard_mcp", "agentcard_mcp.issuers", "httpx", "mcp.server", ""]
)
def test_every_logger_s_records_are_masked(root_output: io.StringIO, logger_name: str) -> None:
    log = logging.getLogger(logger_name)
    log.warning("card %s with key %s", SPACED, SECRET)  # through the arguments
    log.info(f"inline {PAN} cvc 123")  # already in the message
    log.debug("dict arg %s", {"number": PAN, "cvc": "123"})
    text = root_output.getvalue()
    assert text.count("\n") == 3  # every record still logged...
    assert not readable(text)  # ...with nothing readable
    assert "•••• 1111" in text
    assert "cvc ••••" in text


def test_tracebacks_and_stacks_are_masked(root_output: io.StringIO) -> None:
    log = logging.getLogger("agentcard_mcp.issuers")
    try:
        raise ValueError(f"issuer said: card {SPACED} declined, key {SECRET}")
    except ValueError:
        log.exception("the issuer failed")
    log.error("stack for %s", PAN, stack_info=True)
    text = root_output.getvalue()
    assert "ValueError: issuer said: card •••• 1111 declined" in text
    assert "Stack (most recent call last)" in text
    assert not readable(text)


def test_the_filter_alone_masks_a_record_made_without_the_factory() -> None:
    """A record built by hand (bypassing the record factory) is masked by the filter on a
    handler, arguments, traceback and all."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter())
    try:
        raise RuntimeError(f"boom {PAN}")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "pan %s", (SPACED,), exc_info)
    handler.handle(record)
    text = out.getvalue()
    assert "pan •••• 1111" in text
    assert "RuntimeError: boom •••• 1111" in text
    assert not readable(text)


def test_a_formatter_reading_the_arguments_itself_gets_them_masked_in_their_shape() -> None:
    """uvicorn's access formatter unpacks the record's five arguments: they stay a 5-tuple,
    each masked, and a clean record is left exactly as it was."""
    from uvicorn.logging import AccessFormatter

    formatter = AccessFormatter('%(client_addr)s "%(request_line)s" %(status_code)s')
    access = '%s - "%s %s HTTP/%s" %d'
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, access,
        ("127.0.0.1:5000", "GET", f"/v1/cards/{PAN}", "1.1", 404), None,
    )  # fmt: skip
    RedactingFilter().filter(record)
    assert isinstance(record.args, tuple)
    assert len(record.args) == 5
    line = formatter.format(record)
    assert line == '127.0.0.1:5000 "GET /v1/cards/•••• 1111 HTTP/1.1" 404 Not Found'
    clean_args = ("127.0.0.1:5000", "GET", "/v1/cards/card_1", "1.1", 200)
    clean = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, access, clean_args, None)
    RedactingFilter().filter(clean)
    assert (clean.msg, clean.args) == (access, clean_args)


def test_a_card_number_split_over_two_arguments_is_masked_in_the_rendered_message() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s%s", (PAN[:8], PAN[8:]), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == "•••• 1111"
    assert not record.args


def test_installing_twice_masks_once() -> None:
    install_log_redaction()
    factory = logging.getLogRecordFactory()
    install_log_redaction()
    assert logging.getLogRecordFactory() is factory
    assert sum(isinstance(f, RedactingFilter) for f in logging.getLogger().filters) == 1


@pytest.mark.anyio
async def test_approvals_list_masks_what_the_agent_wrote(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    async with SqliteApprovals(tmp_path) as store:
        await store.request(
            "create_card",
            {"purpose": f"pay with {SPACED}", "daily_limit_cents": 5000},
            f"create_card(purpose=pay with {SPACED}, key {SECRET})",
        )
        assert await approvals_command("list", None, store, out, err) == 0
    text = out.getvalue()
    assert "create_card" in text
    assert "pay with •••• 1111" in text
    assert not readable(text + err.getvalue())


@pytest.mark.anyio
async def test_audit_tail_masks_a_line_written_unmasked(tmp_path: Path) -> None:
    """A log from before redaction (or written by another tool) is masked on the way out."""
    with AuditLog(tmp_path / "audit.jsonl") as audit:  # the default scrub keeps everything
        audit.record(
            "create_card",
            caller="stdio",
            arguments={"purpose": f"card {SPACED}", "note": SECRET},
            outcome="ok",
            duration_ms=1.0,
        )
    assert PAN in "".join(ch for ch in (tmp_path / "audit.jsonl").read_text() if ch.isdigit())
    out, err = io.StringIO(), io.StringIO()
    sink = JsonlAudit(tmp_path)
    assert await audit_command("tail", 10, sink, out, err) == 0
    await sink.aclose()
    assert "create_card" in out.getvalue()
    assert "•••• 1111" in out.getvalue()
    assert not readable(out.getvalue() + err.getvalue())


def test_a_cli_error_quoting_a_card_is_masked(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(f'max_per_auth_cents = "{SPACED}"\n"note {PAN}" = 1\n')
    done = subprocess.run(
        [str(SCRIPT), "policy", "check", str(policy)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        env=clean_env(HOME=str(tmp_path)),
    )
    assert done.returncode == 2
    assert "unknown key 'note •••• 1111'" in done.stderr
    assert not readable(done.stdout + done.stderr)


def test_a_protocol_error_raised_under_a_tool_is_masked_in_place() -> None:
    """The SDK turns an MCPError into a JSON-RPC error itself: its text and data are masked,
    and it stays the same exception (the SDK may act on its type)."""
    from mcp.shared.exceptions import MCPError, NoBackChannelError

    from agentcard_mcp.server import _mask_protocol_error

    error = NoBackChannelError("elicitation/create")
    error.error = error.error.model_copy(
        update={"message": f"cannot ask about {SPACED}", "data": {"number": PAN}}
    )
    _mask_protocol_error(error)
    assert isinstance(error, MCPError)
    assert error.message == "cannot ask about •••• 1111"
    assert error.data == {"number": "•••• 1111"}
    clean = MCPError(-32602, "no such card")
    before = clean.error
    _mask_protocol_error(clean)
    assert clean.error is before
