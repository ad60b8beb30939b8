"""The quick check (redaction/quick.py) that lets clean results through the boundary in one
pass: it stops every card number of the corpus — in any shape, split over list items or a
dict's fields, at any depth — in a result exactly as the SDK writes it, so that result takes
the full masking; every card field name and label stops it; and everyday results pass it."""

from __future__ import annotations

import random
from typing import Any

import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.types import CallToolResult, TextContent

from agentcard_mcp.card_brands import BRANDS
from agentcard_mcp.redaction import MASK, clean_json_text, is_card_field, redact, redact_text
from agentcard_mcp.redaction.structure import _CARD_FIELDS, _CHECKED_DEPTH, _walk
from agentcard_mcp.redaction.text import mask_all
from agentcard_mcp.server import _redacted
from tests.card_corpus import bury, cases, everyday_values, pan_of, survivors

CORPUS = cases(4000)


def sdk_result(data: Any) -> CallToolResult:
    """A tool's result as the SDK makes it from structured output: the data, and its JSON."""
    text = pydantic_core.to_json(data, indent=2).decode()
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def ledger_page(entries: int) -> dict[str, Any]:
    rows = [
        {
            "id": f"led_01JD3K4M5N6P7Q8R9S0T{i:06d}",
            "card_id": "card_01JD3K4M5N6P7Q8R9S0T00",
            "decided_at": f"2026-05-{11 + i % 17:02d}T07:{i % 60:02d}:00Z",
            "decision": ("approve", "decline")[i % 2],
            "reason": "approved",
            "amount_cents": 1250 + i * 7919 % 48000,
            "merchant": ("Blue Bottle Coffee", "Delta Air Lines", "AWS EMEA")[i % 3],
            "mcc": "restaurants",
            "current_daily_spend_cents_after": 10000 + i * 1250,
        }
        for i in range(entries)
    ]
    return {"entries": rows, "has_more": True, "next_cursor": "led_next"}


def test_every_corpus_card_in_a_result_as_the_sdk_writes_it_stops_the_quick_check() -> None:
    """Every brand and length, every spelling, glued, padded, and split over list items and
    neighbouring fields — buried at any depth, the structure in a dict or a list."""
    rng = random.Random(14)
    passed = []
    for case in CORPUS:
        data = {"result": bury(case, rng)}
        if clean_json_text(pydantic_core.to_json(data, indent=2).decode()):
            passed.append((case.shape, repr(case.separator), len(case.pan)))
    assert passed == []


def test_no_corpus_card_survives_the_boundary_in_the_structure_or_its_text() -> None:
    rng = random.Random(7)
    left = []
    for case in CORPUS[::4]:
        masked = _redacted(sdk_result({"entries": [{"id": "led_1", "note": bury(case, rng)}]}))
        assert isinstance(masked, CallToolResult)
        text = masked.content[0]
        assert isinstance(text, TextContent)
        if survivors([case.pan], masked.structured_content) or survivors([case.pan], text.text):
            left.append((case.shape, repr(case.separator)))
    assert left == []


@pytest.mark.parametrize("style", ["snake", "camel", "Pascal", "kebab", "upper", "flat"])
def test_every_card_field_name_in_every_spelling_stops_the_quick_check(style: str) -> None:
    names = [*sorted(_CARD_FIELDS), "expiration_month", "expiry_date", "card_number_raw",
             "security_code_2", "backup_card_number", "issuer_cvc", "old_cvv"]  # fmt: skip
    fields = [spelled for name in names if is_card_field(spelled := _spelled(name, style))]
    assert len(fields) >= 10  # "flat" joins most names into no card field ("expmonth")
    for name in fields:
        data = {"id": "card_01JDCV3K", "card": {name: "x"}}
        assert not clean_json_text(pydantic_core.to_json(data, indent=2).decode()), name
        assert redact(data)["card"][name] == MASK, name


def _spelled(name: str, style: str) -> str:
    words = name.split("_")
    if style == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    if style == "Pascal":
        return "".join(w.capitalize() for w in words)
    if style == "kebab":
        return "-".join(words)
    if style == "upper":
        return name.upper()
    if style == "flat":
        return "".join(words)
    return name


@pytest.mark.parametrize(
    ("text", "shown"),
    [("card good through 09/31", "card good through " + MASK),
     ("Good Through: 09/2031", "Good Through: " + MASK),
     ("good-through 0931", "good-through " + MASK),
     ("valid through 09/31", "valid through " + MASK)],
)  # fmt: skip
def test_good_through_is_a_label_and_a_field_the_quick_check_does_not_pass(
    text: str, shown: str
) -> None:
    assert redact_text(text) == shown
    for name in ("good_through", "goodThrough", "GOOD_THROUGH"):
        assert redact({"card": {name: "09/31"}}) == {"card": {name: MASK}}


def test_everyday_results_pass_the_quick_check() -> None:
    """The common case stays the cheap one: a ledger page, a card, and every everyday value of
    the corpus that is not a label look-alike ("exp. 2026-...")."""
    assert clean_json_text(pydantic_core.to_json(ledger_page(50), indent=2).decode())
    card = {"id": "card_01JD3K4M5N6P7Q8R9S0T00", "last4": "4242", "status": "active",
            "created_at": "2026-05-11T07:00:00Z", "expires_at": "2031-09-30T00:00:00Z",
            "daily_limit_cents": 2500, "mcc_allowlist": ["5411", "5812"],
            "purpose": "travel"}  # fmt: skip
    assert clean_json_text(pydantic_core.to_json(card, indent=2).decode())
    values = [v for kind, v in everyday_values(600) if kind not in ("year", "phone", "mcc list")]
    stopped = [v for v in values if not clean_json_text(pydantic_core.to_json({"v": v}).decode())]
    assert len(stopped) <= len(values) // 10, stopped[:10]


ROWS = [(row, length) for row, brand in enumerate(BRANDS) for length in sorted(brand.lengths)]
PANS = [pan_of(random.Random(i), row, length) for i, (row, length) in enumerate(ROWS)]
NOISE = ["led_01JD3K4M5N", "2026-05-11T07:00:00Z", "approved", "", "12", "5411", "v1.2"]


@st.composite
def split_structures(draw: st.DrawFn) -> Any:
    """A card number cut at random places into neighbouring strings of a list or a dict, its
    pieces spelled with a separator, among other values, at some depth."""
    pan = draw(st.sampled_from(PANS))
    cuts = sorted(draw(st.sets(st.integers(1, len(pan) - 1), min_size=1, max_size=4)))
    sep = draw(st.sampled_from([" ", "-", ".", "", "  ", " - ", "/"]))
    pieces = []
    for lo, hi in zip([0, *cuts], [*cuts, len(pan)], strict=True):
        part = pan[lo:hi]
        pieces.append(sep.join(part[i : i + 4] for i in range(0, len(part), 4)))
    edges = draw(st.tuples(st.sampled_from(NOISE), st.sampled_from(NOISE)))
    values = [edges[0], *pieces, edges[1]]
    node: Any = values
    if draw(st.booleans()):
        node = {f"k{i}": value for i, value in enumerate(values)}
    for _ in range(draw(st.integers(0, 3))):
        node = {"id": "led_01JD3K4M5N", "items": [node, {"n": 7}]}
    return {"result": node}


@settings(max_examples=200, deadline=None)
@given(split_structures())
def test_a_card_split_at_any_place_over_neighbours_never_passes_the_quick_check(data: Any) -> None:
    """Whenever the full masking would change the result — its text as text, or the structure
    walked whole (deeper than where containers are checked quickly first) — the quick check
    does not pass it."""
    text = pydantic_core.to_json(data, indent=2).decode()
    if mask_all(text) != text or _walk(data, depth=_CHECKED_DEPTH + 1) is not data:
        assert not clean_json_text(text)


def test_cid_code_written_as_one_word_stops_the_quick_check() -> None:
    """The full masking reads "cid" + "code" as a CVC label; the quick check must not pass it."""
    from agentcard_mcp.redaction import redact_text

    for text in ("cidcode: 123", "CIDcode 1234", "cidCode: 123", "CIDCODE=1234"):
        assert "123" not in redact_text(text)
    assert redact_text("cidr 10.0.0.0/8") == "cidr 10.0.0.0/8"
