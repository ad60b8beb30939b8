"""Issue 12's corpus (DESIGN §6): card numbers of every brand in every separator, padding,
gluing and splitting shape (tests/card_corpus.py) — at any depth of a result, in an error
text, a log record (through the real logging filter), an audit line and an approval (through
the real storage) — with zero survivors; and everyday values that look numeric — years,
quarters, versions, timestamps, order numbers, dates, phone numbers, amounts, UUIDs, ids —
through the same places with zero masked."""

from __future__ import annotations

import io
import json
import logging
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from agentcard_mcp.audit import record_of
from agentcard_mcp.card_brands import BRANDS
from agentcard_mcp.errors import IssuerUnavailable
from agentcard_mcp.redaction import MASK, install_log_redaction, redact, redact_text
from agentcard_mcp.settings import Settings
from agentcard_mcp.storage import open_storage
from tests.card_corpus import (
    SEPARATORS,
    SPLIT_SHAPES,
    TEXT_SHAPES,
    Case,
    bury,
    cases,
    everyday_values,
    survivors,
)

N = 10_200  # every brand row at every length, in every shape and separator: >10 000 numbers
CORPUS = cases(N)
TEXTS = [case for case in CORPUS if isinstance(case.value, str)]
EVERYDAY = everyday_values(6000)


def test_the_corpus_covers_every_brand_shape_and_separator() -> None:
    assert len(CORPUS) >= 10_000
    assert {case.shape for case in CORPUS} == set(TEXT_SHAPES) | set(SPLIT_SHAPES)
    assert {case.separator for case in CORPUS} == set(SEPARATORS)
    rows = {(row, n) for row, brand in enumerate(BRANDS) for n in brand.lengths}
    assert {(case.row, len(case.pan)) for case in CORPUS} == rows
    # And the numbers really are in there, readable, before masking.
    assert survivors([c.pan for c in CORPUS[:500]], [c.value for c in CORPUS[:500]])


def test_no_card_number_survives_at_any_depth_of_a_result() -> None:
    rng = random.Random(12)
    left = []
    for case in CORPUS:
        masked = redact(bury(case, rng))
        if survivors([case.pan], masked):
            left.append((case.shape, repr(case.separator), len(case.pan)))
    assert left == []


def test_no_card_number_survives_in_an_error_text() -> None:
    """As the boundary masks a tool error: ``redact_text(str(error))``; a split card is
    quoted as the list it came in."""
    left = []
    for case in CORPUS:
        if isinstance(case.value, dict):
            continue  # a card split over a dict's fields is found in data (see the log test)
        if isinstance(case.value, list) and ("'" in case.separator or '"' in case.separator):
            continue  # quotes inside quoted items: a list's text no longer says which is which
        error = IssuerUnavailable(f"the issuer said: card {case.value!s} was declined")
        if survivors([case.pan], redact_text(str(error))):
            left.append((case.shape, repr(case.separator)))
    assert left == []


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything that reaches a handler on a logger of ours, as the server installs it."""
    install_log_redaction()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("agentcard_mcp.issuers.corpus")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_no_card_number_survives_in_a_log_record(log_output: io.StringIO) -> None:
    """Ten numbers a record: as text already in the message, or as arguments (data)."""
    logger = logging.getLogger("agentcard_mcp.issuers.corpus")
    rng = random.Random(13)
    for batch in _batches(CORPUS, 10):
        texts = [case.value for case in batch if isinstance(case.value, str)]
        if texts and rng.random() < 0.5:
            logger.warning(f"issuer answered: {' and '.join(texts)} (status 402)")
            batch = [case for case in batch if not isinstance(case.value, str)]
        if batch:
            logger.warning("issuer answered: %s", [bury(case, rng) for case in batch])
    text = log_output.getvalue()
    assert text.count("issuer answered") >= len(CORPUS) // 10
    assert survivors([case.pan for case in CORPUS], text) == []
    assert text.count(MASK) >= len(CORPUS)


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(issuer="sandbox", home=tmp_path / "home")
    url = request.getfixturevalue("postgres_url")
    return Settings(issuer="sandbox", home=tmp_path / "home", database_url=SecretStr(url))


def _batches(items: list[Case], size: int) -> Iterator[list[Case]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@pytest.mark.anyio
async def test_no_card_number_is_stored_in_an_audit_line_or_an_approval(
    settings: Settings,
) -> None:
    """The agent's own arguments, as the storage the server opens keeps them: the audit sink
    scrubs every record, an approval keeps its arguments and summary masked (its digest still
    binds the raw arguments). Eight numbers to an audit line, a hundred to an approval."""
    corpus = CORPUS[:: 10 if settings.database_url else 1]  # PostgreSQL: a tenth, for time
    rng = random.Random(14)
    async with open_storage(settings) as storage:
        for batch in _batches(corpus, 8):  # eight to a line: under the line cap (4 KB)
            arguments = {f"note{i}": case.value for i, case in enumerate(batch)}
            await storage.audit.write(record_of("create_card", caller="stdio", arguments=arguments,
                                                outcome="ok", duration_ms=1.0))  # fmt: skip
        for batch in _batches(corpus, 100):
            arguments = {f"a{i}": bury(case, rng) for i, case in enumerate(batch)}
            summary = "create_card(" + "; ".join(str(c.value) for c in batch[:20]) + ")"
            requested = await storage.approvals.request("create_card", arguments, summary)
            assert requested.new
        stored = await storage.approvals.pending()
        tail = await storage.audit.tail(len(corpus))
    assert tail is not None
    assert len(tail.records) == len(range(0, len(corpus), 8))
    assert not any("_preview" in record["arguments"] for record in tail.records)
    assert len(stored) == len(range(0, len(corpus), 100))
    pans = [case.pan for case in corpus]
    lines = json.dumps(tail.records, ensure_ascii=False)
    assert lines.count(MASK) >= len(corpus)
    approvals = json.dumps([[a.summary, a.arguments] for a in stored], ensure_ascii=False)
    assert survivors(pans, lines) == []
    assert survivors(pans, approvals) == []
    if not settings.database_url:  # and on disk, byte for byte
        home = settings.home
        raw = (home / "audit.jsonl").read_text()
        assert survivors(pans, raw) == []
        with sqlite3.connect(home / "approvals.db") as db:
            rows = db.execute("SELECT summary, arguments FROM approvals").fetchall()
        assert survivors(pans, json.dumps(rows, ensure_ascii=False)) == []


# -- everyday values: zero masked ------------------------------------------------------------


def test_no_everyday_value_is_masked_alone_or_in_a_result() -> None:
    changed = [(kind, value) for kind, value in EVERYDAY if redact(value) != value]
    assert changed == []
    texts = [(kind, value) for kind, value in EVERYDAY if isinstance(value, str)]
    assert [(k, v) for k, v in texts if redact_text(f"at {v}.") != f"at {v}."] == []
    record = {f"{kind}_{i}": value for i, (kind, value) in enumerate(EVERYDAY[:2000])}
    assert redact(record) == record
    listed = [value for _, value in EVERYDAY[:2000]]
    assert redact(listed) == listed


def test_no_everyday_value_is_masked_in_a_log_record(log_output: io.StringIO) -> None:
    logger = logging.getLogger("agentcard_mcp.issuers.corpus")
    for kind, value in EVERYDAY:
        logger.info("%s: %s", kind, value)
    assert MASK not in log_output.getvalue()


@pytest.mark.anyio
async def test_no_everyday_value_is_masked_in_an_audit_line(tmp_path: Path) -> None:
    settings = Settings(issuer="sandbox", home=tmp_path / "home")
    written = []
    async with open_storage(settings) as storage:
        for i in range(0, len(EVERYDAY), 20):
            arguments = {
                f"{kind}_{j}": value for j, (kind, value) in enumerate(EVERYDAY[i : i + 20])
            }
            written.append(json.loads(json.dumps(arguments)))
            await storage.audit.write(record_of("read_ledger", caller="stdio",
                                                arguments=arguments, outcome="ok",
                                                duration_ms=1.0))  # fmt: skip
        tail = await storage.audit.tail(len(written))
    assert tail is not None
    assert [record["arguments"] for record in tail.records] == written
