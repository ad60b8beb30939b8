"""The audit sink's contract (storage.base.AuditSink), the same for both backends: every record is
scrubbed and capped before it is stored, ``tail`` gives the last ones newest last, sinks of other
processes or replicas add to one trail, and the operator's ``agentcard-mcp audit tail`` reads it.
On PostgreSQL the trail is append-only: the database itself refuses UPDATE, DELETE, TRUNCATE."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from agentcard_mcp.audit import MAX_LINE_BYTES, AuditRecord, identity, record_of
from agentcard_mcp.redaction import redact
from agentcard_mcp.storage.base import AuditSink
from agentcard_mcp.storage.postgres.audit import PostgresAudit
from agentcard_mcp.storage.postgres.db import open_pool
from agentcard_mcp.storage.sqlite.audit import JsonlAudit
from tests.support import FakeClock

pytestmark = pytest.mark.anyio

SCRIPT = Path(sys.executable).with_name("agentcard-mcp")
FIELDS = ["time", "tool", "caller", "outcome", "card_id", "approval_id", "duration_ms", "arguments"]
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PAN = "4242424242424242"  # a test card number: Visa, passes Luhn

Scrub = Callable[[Any], Any]
# Opens one more sink on the test's trail (its own file descriptor, or its own pool: another
# process or replica); closed at the end of the test.
OpenSink = Callable[[Scrub], Awaitable[AuditSink]]


@pytest.fixture
async def open_sink(backend: str, target: str, anyio_backend: str) -> AsyncIterator[OpenSink]:
    async with AsyncExitStack() as stack:

        async def open_(scrub: Scrub = identity) -> AuditSink:
            sink: AuditSink
            if backend == "sqlite":
                sink = JsonlAudit(Path(target), scrub)
            else:
                pool = await stack.enter_async_context(open_pool(target, max_size=4))
                sink = PostgresAudit(pool, scrub)
            stack.push_async_callback(sink.aclose)
            return sink

        yield open_


@pytest.fixture
async def sink(open_sink: OpenSink) -> AuditSink:
    return await open_sink(identity)


def call(clock: FakeClock, i: int = 0, **overrides: Any) -> AuditRecord:
    """The record of one call; each a millisecond after the last."""
    clock.advance(milliseconds=1)
    fields: dict[str, Any] = {
        "tool": "create_card",
        "caller": "stdio",
        "arguments": {"purpose": "coffee", "daily_limit_cents": 1500, "i": i},
        "outcome": "ok",
        "duration_ms": 12.3456,
        "card_id": f"card_{i:04d}",
        "approval_id": None,
        **overrides,
    }
    return record_of(clock=clock, **fields)


async def stored(sink: AuditSink, n: int = 10_000) -> list[dict[str, Any]]:
    tail = await sink.tail(n)
    assert tail is not None
    assert tail.skipped == 0
    return tail.records


async def test_tail_gives_the_last_records_newest_last_as_they_were_written(
    sink: AuditSink, clock: FakeClock
) -> None:
    written = [call(clock, i) for i in range(30)]
    written.append(
        call(clock, 30, tool="get_card", caller="key_7", outcome="not_found", card_id=None,
             approval_id="apr_x", duration_ms=0)
    )  # fmt: skip
    for record in written:
        await sink.write(record)

    everything = await stored(sink)
    assert everything == [record.as_dict() for record in written]
    assert all(list(line) == FIELDS and TIME.match(line["time"]) for line in everything)
    assert everything[0]["duration_ms"] == 12.346  # rounded to the microsecond once, when made
    assert await stored(sink, 3) == everything[-3:]
    assert await stored(sink, 1) == [written[-1].as_dict()]


async def test_a_trail_with_nothing_in_it_has_no_records(sink: AuditSink) -> None:
    tail = await sink.tail(5)
    assert tail is None or tail.records == []
    with pytest.raises(ValueError, match="at least 1"):
        await sink.tail(0)


async def test_every_record_is_scrubbed_before_it_is_stored(
    backend: str, target: str, open_sink: OpenSink, clock: FakeClock
) -> None:
    sink = await open_sink(redact)
    await sink.write(call(clock, arguments={"purpose": f"pay {PAN}", "note": "cvc: 123"}))
    [line] = await stored(sink)
    assert line["arguments"]["purpose"] == "pay •••• 4242"
    assert "123" not in json.dumps(line)
    # Not only the reading is masked: what is stored holds no number.
    assert PAN not in await raw_trail(backend, target)


async def test_a_failing_scrub_withholds_the_arguments_but_keeps_the_call(
    open_sink: OpenSink, clock: FakeClock
) -> None:
    def broken(_: Any) -> Any:
        raise RuntimeError(PAN)

    sink = await open_sink(broken)
    await sink.write(call(clock, arguments={"purpose": PAN}))
    [line] = await stored(sink)
    assert line["arguments"] == {"_withheld": "scrub failed: RuntimeError"}
    assert (line["tool"], line["outcome"]) == ("create_card", "ok")


async def test_oversized_arguments_are_cut_to_a_marked_preview(
    sink: AuditSink, clock: FakeClock
) -> None:
    await sink.write(call(clock, arguments={"purpose": "x" * 50_000}))
    [line] = await stored(sink)
    assert line["arguments"]["_truncated"] is True
    assert line["arguments"]["_bytes"] > 50_000
    assert len(json.dumps(line)) <= MAX_LINE_BYTES


async def test_what_the_agent_sent_is_kept_as_sent_or_spelled_out(
    sink: AuditSink, clock: FakeClock
) -> None:
    # PostgreSQL text cannot hold NUL: there it is spelled out, and the call is still recorded.
    text = "nul\x00 esc\x1b[2J bidi\u202e card\U0001f4b3"
    await sink.write(call(clock, card_id=text, arguments={text: text}))
    [line] = await stored(sink)
    spelled = text.replace("\x00", "\\u0000")
    assert line["card_id"] in (text, spelled)
    assert line["arguments"] in ({text: text}, {spelled: spelled})


async def test_sinks_of_three_replicas_add_to_one_trail(
    open_sink: OpenSink, clock: FakeClock
) -> None:
    replicas = [await open_sink(identity) for _ in range(3)]

    async def calls(n: int, sink: AuditSink) -> None:
        for i in range(20):
            await sink.write(call(clock, n * 100 + i, caller=f"replica_{n}"))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            for n, replica in enumerate(replicas):
                tasks.start_soon(calls, n, replica)
    reader = await open_sink(identity)
    lines = await stored(reader)
    assert sorted(line["arguments"]["i"] for line in lines) == sorted(
        n * 100 + i for n in range(3) for i in range(20)
    )
    for n in range(3):  # each replica's records in the order it wrote them
        mine = [line["arguments"]["i"] for line in lines if line["caller"] == f"replica_{n}"]
        assert mine == [n * 100 + i for i in range(20)]


async def test_postgresql_refuses_to_change_or_remove_audit_records(
    postgres_url: str, clock: FakeClock
) -> None:
    # (The JSONL file's own guarantees are tested in tests/test_audit.py.)
    async with open_pool(postgres_url, max_size=2) as pool:
        sink = PostgresAudit(pool)
        for i in range(3):
            await sink.write(call(clock, i))
        before = await stored(sink)
        await refuse_changes(postgres_url)
        assert await stored(sink) == before
        await sink.write(call(clock, 3))  # adding still works
        assert len(await stored(sink)) == 4


async def refuse_changes(url: str) -> None:
    attempts = [
        "UPDATE audit_records SET outcome = 'ok', arguments = '{}'",
        "UPDATE audit_records SET id = id + 1000 WHERE id = (SELECT max(id) FROM audit_records)",
        "DELETE FROM audit_records",
        "DELETE FROM audit_records WHERE id = (SELECT min(id) FROM audit_records)",
        "TRUNCATE audit_records",
    ]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for statement in attempts:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                await conn.execute(statement.encode())


async def raw_trail(backend: str, target: str) -> str:
    """Everything the backend stored, as text."""
    if backend == "sqlite":
        return (Path(target) / "audit.jsonl").read_text()
    async with await psycopg.AsyncConnection.connect(target) as conn:
        cursor = await conn.execute("SELECT row_to_json(a)::text FROM audit_records a")
        return "\n".join(str(row[0]) for row in await cursor.fetchall())


# --- `agentcard-mcp audit tail`, as a process, on the backend the settings name ----------------


async def test_the_operator_reads_the_trail_with_the_command(
    backend: str, target: str, tmp_path: Path, sink: AuditSink, clock: FakeClock
) -> None:
    for i in range(3):
        await sink.write(call(clock, i, caller=f"key_{i}"))
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AGENTCARD_")}
    env["AGENTCARD_HOME"] = target if backend == "sqlite" else str(tmp_path / "operator-home")
    if backend == "postgres":
        env["AGENTCARD_DATABASE_URL"] = target
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [str(SCRIPT), "audit", "tail", "-n", "2"],
            env=env,
            cwd=tmp_path,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode == 0, done.stderr.decode()
    shown = done.stdout.decode().splitlines()
    assert [line.split()[1:4] for line in shown] == [
        ["key_1", "create_card", "ok"],
        ["key_2", "create_card", "ok"],
    ]
    assert '"i":2' in shown[-1]
