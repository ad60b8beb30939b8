"""The audit log: one valid JSON line per call, private, shared by threads and processes, intact
after a kill; ``read_tail`` and ``agentcard-mcp audit tail``."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from agentcard_mcp import audit
from agentcard_mcp.audit import (
    MAX_LINE_BYTES,
    AuditLog,
    AuditRecord,
    audit_command,
    audit_path,
    format_record,
    read_tail,
    scan_tail,
)
from agentcard_mcp.home import UnsafeHome
from agentcard_mcp.storage.sqlite.audit import JsonlAudit
from tests.support import FakeClock

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
FIELDS = {"time", "tool", "caller", "arguments", "outcome", "card_id", "approval_id", "duration_ms"}


def call(log: AuditLog, **overrides: Any) -> None:
    fields: dict[str, Any] = {
        "caller": "stdio",
        "arguments": {"amount_cents": 1500, "merchant": "Delta"},
        "outcome": "ok",
        "duration_ms": 1.25,
        "card_id": "card_01",
        "approval_id": None,
    }
    fields.update(overrides)
    log.record(fields.pop("tool", "create_card"), **fields)


def lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return audit_path(tmp_path / "home")


def test_one_line_per_record_with_every_field_typed(path: Path) -> None:
    with AuditLog(path) as log:
        call(log)
        call(log, tool="get_card", caller="key_7", outcome="not_found", card_id=None)
        call(log, tool="approve", approval_id="apr_1", duration_ms=0.0004, arguments={})

    raw = lines(path)
    assert len(raw) == 3
    records = [json.loads(line) for line in raw]
    for record in records:
        assert set(record) == FIELDS
        assert TIME.match(record["time"])
        assert isinstance(record["tool"], str)
        assert isinstance(record["caller"], str)
        assert isinstance(record["arguments"], dict)
        assert isinstance(record["outcome"], str)
        assert isinstance(record["duration_ms"], float)
    assert records[0]["arguments"] == {"amount_cents": 1500, "merchant": "Delta"}
    assert (records[0]["card_id"], records[0]["approval_id"]) == ("card_01", None)
    assert (records[1]["caller"], records[1]["outcome"], records[1]["card_id"]) == (
        "key_7",
        "not_found",
        None,
    )
    assert records[2]["approval_id"] == "apr_1"
    assert records[2]["duration_ms"] == 0.0  # rounded to the microsecond


def test_time_is_utc_with_milliseconds(path: Path, clock: FakeClock) -> None:
    clock.advance(microseconds=123_456)
    with AuditLog(path, clock=clock) as log:
        call(log)
    assert read_tail(path, 1)[0]["time"] == "2026-05-11T07:00:00.123Z"


def test_write_takes_a_prebuilt_record(path: Path) -> None:
    record = AuditRecord(
        "2026-01-01T00:00:00.000Z", "list_cards", "stdio", {}, "ok", None, None, 2.0
    )
    with AuditLog(path) as log:
        log.write(record)
    assert read_tail(path, 1) == [record.as_dict()]


def test_file_is_private_and_created_with_its_folder(path: Path) -> None:
    AuditLog(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_an_existing_file_open_to_others_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"")
    path.chmod(0o644)
    AuditLog(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_symlink_at_the_path_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (tmp_path / "audit.jsonl").symlink_to(target)
    with pytest.raises(UnsafeHome, match=r"audit\.jsonl is a symbolic link"):
        AuditLog(tmp_path / "audit.jsonl")
    assert target.read_bytes() == b""


def test_a_restart_appends(path: Path) -> None:
    with AuditLog(path) as first:
        call(first, arguments={"n": 1})
    with AuditLog(path) as second:
        call(second, arguments={"n": 2})
    assert [r["arguments"]["n"] for r in read_tail(path, 10)] == [1, 2]
    assert len(lines(path)) == 2


def test_threads_never_interleave(path: Path) -> None:
    threads, per_thread = 8, 200
    with AuditLog(path) as log:

        def worker(t: int) -> None:
            for i in range(per_thread):
                call(log, arguments={"t": t, "i": i, "pad": "x" * 200})

        pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()

    records = [json.loads(line) for line in lines(path)]
    assert len(records) == threads * per_thread
    seen = sorted((r["arguments"]["t"], r["arguments"]["i"]) for r in records)
    assert seen == [(t, i) for t in range(threads) for i in range(per_thread)]


CHILD = """
import sys
from pathlib import Path
from agentcard_mcp.audit import AuditLog

log = AuditLog(Path(sys.argv[1]))
pad = "x" * 3000  # lines near the size cap: the likeliest to straddle a page boundary
i = 0
while True:
    log.record("create_card", caller="stdio", arguments={"i": i, "pad": pad}, outcome="ok",
               duration_ms=0.5)
    i += 1
    if i == 200:
        print("ready", flush=True)
"""


def test_a_killed_writer_leaves_valid_jsonl(path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    *complete, last = path.read_bytes().split(b"\n")
    assert len(complete) >= 200
    numbers = [json.loads(line)["arguments"]["i"] for line in complete]
    assert numbers == list(range(len(complete)))
    # At most the last line is torn, and read_tail passes over it.
    tail = scan_tail(path, 3)
    assert [r["arguments"]["i"] for r in tail.records] == numbers[-3:]
    assert tail.skipped == (1 if last else 0)

    # The server restarts: its lines parse whatever the killed one left behind.
    with AuditLog(path) as log:
        call(log, arguments={"i": "after"})
    assert read_tail(path, 1)[0]["arguments"] == {"i": "after"}
    assert scan_tail(path, 2).skipped == 0


def test_a_torn_tail_is_closed_off_before_the_next_line(path: Path) -> None:
    with AuditLog(path) as log:
        call(log, arguments={"n": 1})
    with path.open("ab") as file:
        file.write(b'{"time":"2026-05-11T07:0')  # a writer killed inside its write

    tail = scan_tail(path, 5)
    assert ([r["arguments"] for r in tail.records], tail.skipped) == ([{"n": 1}], 1)

    with AuditLog(path) as log:
        call(log, arguments={"n": 2})
        call(log, arguments={"n": 3})
    raw = lines(path)
    assert raw[1] == b'{"time":"2026-05-11T07:0'
    assert [json.loads(line)["arguments"]["n"] for line in raw[:1] + raw[2:]] == [1, 2, 3]
    tail = scan_tail(path, 5)
    assert ([r["arguments"]["n"] for r in tail.records], tail.skipped) == ([1, 2, 3], 1)


def test_a_last_line_cut_just_before_its_newline_is_kept(path: Path) -> None:
    with AuditLog(path) as log:
        call(log, arguments={"n": 1})
        call(log, arguments={"n": 2})
    path.write_bytes(path.read_bytes()[:-1])
    tail = scan_tail(path, 5)
    assert ([r["arguments"]["n"] for r in tail.records], tail.skipped) == ([1, 2], 0)


def test_scrub_sees_every_record_as_plain_json(path: Path) -> None:
    seen: list[Any] = []

    def scrub(record: Any) -> Any:
        seen.append(record)
        return {**record, "arguments": dict.fromkeys(record["arguments"], "[redacted]")}

    with AuditLog(path, scrub) as log:
        call(log, arguments={"number": "4242424242424242", "cvc": "123", "when": object()})
    assert read_tail(path, 1)[0]["arguments"] == {
        "number": "[redacted]",
        "cvc": "[redacted]",
        "when": "[redacted]",
    }
    assert b"4242" not in path.read_bytes()
    assert isinstance(seen[0]["arguments"]["when"], str)  # a repr, not the object


@pytest.mark.parametrize("result", ["raise", "not a dict"])
def test_a_failing_scrub_withholds_the_arguments_but_keeps_the_line(
    path: Path, result: str, caplog: pytest.LogCaptureFixture
) -> None:
    def scrub(record: Any) -> Any:
        if result == "raise":
            raise RuntimeError("cannot redact 4242424242424242")
        return ["4242424242424242"]

    with AuditLog(path, scrub) as log:
        call(log, arguments={"number": "4242424242424242"}, outcome="invalid_params")
    (record,) = read_tail(path, 5)
    assert record["outcome"] == "invalid_params"
    assert list(record["arguments"]) == ["_withheld"]
    assert b"4242" not in path.read_bytes()
    assert "4242" not in caplog.text
    assert "arguments withheld" in caplog.text


def test_values_json_cannot_encode_are_written_as_repr(path: Path) -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    arguments = {
        "object": object(),
        "bytes": b"\x00",
        "set": {1},
        "nan": float("nan"),
        "inf": float("-inf"),
        "tuple": (1, "a"),
        "keys": {(1, 2): "tuple key", 3: "int key"},
        "cyclic": cyclic,
        "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["bottom"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    }
    with AuditLog(path) as log:
        call(log, arguments=arguments)
        call(log, duration_ms=float("nan"))
    first, second = (json.loads(line) for line in lines(path))  # strict JSON: no NaN tokens
    written = first["arguments"]
    assert written["bytes"] == "b'\\x00'"
    assert written["set"] == "{1}"
    assert (written["nan"], written["inf"]) == ("nan", "-inf")
    assert written["tuple"] == [1, "a"]
    assert written["keys"] == {"(1, 2)": "tuple key", "3": "int key"}
    assert written["cyclic"] == {"self": "<dict too deep or recursive>"}
    assert "too deep" in json.dumps(written["deep"])
    assert second["duration_ms"] == "nan"
    assert b"NaN" not in path.read_bytes()


def test_oversized_arguments_are_cut_to_a_marked_preview(path: Path) -> None:
    with AuditLog(path) as log:
        call(log, arguments={"memo": "é" * 50_000})
        call(log, tool="t" * 10_000, caller="c" * 10_000, arguments={"memo": "x" * 10_000})
    raw = lines(path)
    assert all(len(line) + 1 <= MAX_LINE_BYTES for line in raw)
    first, second = (json.loads(line) for line in raw)
    assert first["arguments"]["_truncated"] is True
    assert first["arguments"]["_bytes"] > 50_000
    assert first["arguments"]["_preview"].startswith('{"memo":"\\u00e9')
    assert first["card_id"] == "card_01"
    assert len(second["tool"]) == 256


def test_io_errors_reach_the_caller(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog(path)
    real_write = os.write
    plan = ["partial", "fail"]

    def write(fd: int, data: Any) -> int:
        if fd == log._fd and plan:
            step = plan.pop(0)
            if step == "partial":
                return real_write(fd, bytes(data[:10]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(OSError, match="No space"):
        call(log, arguments={"n": 1})
    call(log, arguments={"n": 2})  # the disk has room again
    log.close()
    with pytest.raises(ValueError, match="closed"):
        call(log)

    raw = lines(path)
    assert len(raw) == 2
    assert json.loads(raw[1])["arguments"] == {"n": 2}  # not glued to the fragment


def test_fsync_mode_writes_the_same_lines(path: Path) -> None:
    with AuditLog(path, fsync=True) as log:
        call(log)
        call(log)
    assert len(read_tail(path, 10)) == 2


def test_read_tail_reads_backwards_across_blocks(path: Path) -> None:
    with AuditLog(path) as log:
        for i in range(1500):
            call(log, arguments={"i": i, "pad": "y" * 100})
    assert path.stat().st_size > 3 * 65536
    assert [r["arguments"]["i"] for r in read_tail(path, 4)] == [1496, 1497, 1498, 1499]
    assert len(read_tail(path, 5000)) == 1500


def test_read_tail_needs_a_log_and_a_positive_n(path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_tail(path, 1)
    AuditLog(path).close()
    assert read_tail(path, 1) == []
    with pytest.raises(ValueError, match="at least 1"):
        read_tail(path, 0)


async def run(home: Path, n: int = 20, action: str = "tail") -> tuple[int, str, str]:
    """``audit tail`` on the trail of a SQLite home (the sink opened as the command opens it)."""
    out, err = io.StringIO(), io.StringIO()
    sink = JsonlAudit(home)
    try:
        status = await audit_command(action, n, sink, out, err)
    finally:
        await sink.aclose()
    return status, out.getvalue(), err.getvalue()


@pytest.mark.anyio
async def test_audit_tail_prints_one_fixed_width_line_per_record(tmp_path: Path) -> None:
    with AuditLog(audit_path(tmp_path)) as log:
        for i in range(25):
            call(log, arguments={"i": i})
        call(log, tool="get_card", caller="key_7", outcome="not_found", card_id=None)

    status, out, err = await run(tmp_path)
    assert (status, err) == (0, "")
    shown = out.splitlines()
    assert len(shown) == 20
    assert shown[-1].split()[1:6] == ["key_7", "get_card", "not_found", "-", "-"]
    assert re.match(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z +stdio +create_card +ok +card_01 +- +"
        r'\{"i":24\}$',
        shown[-2],
    )
    # Fixed width: the columns line up whatever the values.
    assert shown[-1].index("{") == shown[-2].index("{")

    status, out, _ = await run(tmp_path, n=3)
    assert (status, len(out.splitlines())) == (0, 3)


@pytest.mark.anyio
async def test_audit_tail_without_a_log(tmp_path: Path) -> None:
    status, out, err = await run(tmp_path)
    assert (status, err) == (0, "")
    assert out == f"no audit log yet at {tmp_path / 'audit.jsonl'}: no tool has been called\n"


@pytest.mark.anyio
async def test_audit_tail_of_an_empty_log_says_so(tmp_path: Path) -> None:
    (tmp_path / "audit.jsonl").write_text("")
    status, out, err = await run(tmp_path)
    assert (status, err) == (0, "")
    assert out == f"no calls recorded yet in {tmp_path / 'audit.jsonl'}\n"


@pytest.mark.parametrize(("action", "n", "message"), [("tail", 0, "at least 1"), ("x", 5, "tail")])
@pytest.mark.anyio
async def test_audit_tail_refuses_bad_input(
    tmp_path: Path, action: str, n: int, message: str
) -> None:
    status, out, err = await run(tmp_path, n=n, action=action)
    assert (status, out) == (2, "")
    assert message in err


@pytest.mark.anyio
async def test_audit_tail_reports_skipped_lines(tmp_path: Path) -> None:
    with AuditLog(audit_path(tmp_path)) as log:
        call(log)
    with audit_path(tmp_path).open("ab") as file:
        file.write(b'{"tool":"cre')
    status, out, err = await run(tmp_path)
    assert (status, len(out.splitlines())) == (0, 1)
    assert "1 unreadable line(s) skipped" in err


@pytest.mark.anyio
async def test_audit_tail_cannot_read(tmp_path: Path) -> None:
    os.mkdir(audit_path(tmp_path))
    status, out, err = await run(tmp_path)
    assert (status, out) == (1, "")
    assert "cannot read" in err


def test_shown_records_cannot_drive_the_terminal() -> None:
    line = format_record(
        {"tool": "get_card\x1b[2J", "caller": "stdio", "arguments": {"merchant": "Café\x9b31m"}}
    )
    assert "\x1b" not in line
    assert "\x9b" not in line
    assert "\\x1b[2J" in line
    assert "Café" in line
    assert audit.DEFAULT_TAIL == 20
