"""The merchant blocklist (issue 12): a blocked merchant is declined however it is spelled —
invisible characters, look-alike letters, case, accents, punctuation, spacing, a processor's
prefix — at the server (``simulate_purchase`` through the SDK client, both modes) and at the
sandbox issuer (``POST /v1/_test/swipe``); and legitimate names that merely contain a blocked
one inside a word are not."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import TextContent

from agentcard_mcp.merchants import PROCESSOR_PREFIXES, blocked_by
from agentcard_mcp.server import create_server
from agentcard_mcp.settings import Settings
from tests.sandbox.test_api_cards import new_card, ok, swipe
from tests.support import Sandbox

pytestmark = pytest.mark.anyio

BLOCKED = ["Casino Royale", "PayPal", "bet", "Amazon", "Shell", "Uber", "Café Nero", "IKEA"]

# Each a way of writing "Casino Royale" that reads as it on a screen or a statement.
Disguise = Callable[[str], str]


def prefixed(prefix: str) -> Disguise:
    return lambda name: f"{prefix} *{name}"


DISGUISES: dict[str, Disguise] = {
    "as-is": lambda s: s,
    "upper": str.upper,
    "lower": str.lower,
    "cgj-u034f": lambda s: s.replace("a", "a\u034f"),
    "vs16-ufe0f": lambda s: s.replace("o", "o\ufe0f"),
    "vs-supplement": lambda s: s + "\U000e0100",
    "hangul-filler-u3164": lambda s: s.replace(" ", "\u3164"),
    "halfwidth-filler-uffa0": lambda s: s.replace(" ", "\uffa0"),
    "choseong-filler-u115f": lambda s: s.replace(" ", "\u115f"),
    "braille-blank-u2800": lambda s: s.replace(" ", "\u2800"),
    "zero-width-space": lambda s: "\u200b".join(s),
    "soft-hyphen": lambda s: s.replace("i", "i\u00ad"),
    "word-joiner-and-bom": lambda s: "\u2060" + s + "\ufeff",
    "tag-characters": lambda s: s + "\U000e0041\U000e007f",
    "bidi-marks": lambda s: "\u200e" + s + "\u200f",
    "nbsp": lambda s: s.replace(" ", "\u00a0"),
    "ideographic-space": lambda s: s.replace(" ", "\u3000"),
    "cyrillic-a": lambda s: s.replace("a", "\u0430"),
    "cyrillic-o-e-p": lambda s: s.replace("o", "\u043e").replace("e", "\u0435"),
    "greek-omicron": lambda s: s.replace("o", "\u03bf"),
    "fullwidth": lambda s: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s),
    "math-bold": lambda s: "".join(chr(0x1D400 + ord(c) - 65) if "A" <= c <= "Z" else c for c in s),
    "capital-i-for-l": lambda s: s.replace("l", "I"),
    "digit-zero-for-o": lambda s: s.replace("o", "0"),
    "rn-for-m": lambda s: s.replace("m", "rn"),
    "accents": lambda s: s.replace("a", "á").replace("o", "ö"),
    "trailing-dot": lambda s: s + ".",
    "trailing-punctuation": lambda s: s + "!!!,;",
    "hyphenated": lambda s: s.replace(" ", "-"),
    "glued": lambda s: s.replace(" ", ""),
    "spaced": lambda s: "  " + s.replace(" ", " \t ") + "  ",
    "suffix": lambda s: s + " #1234 LAS VEGAS NV",
    **{f"prefix-{p.lower()}": prefixed(p) for p in PROCESSOR_PREFIXES},
    "prefix-sq-glued": lambda s: f"SQ*{s}",
    "prefix-tst-glued": lambda s: f"TST*{s}",
    "prefix-pp-glued": lambda s: f"PP*{s}",
    "prefix-shopify-space": lambda s: f"SP {s}",
    "prefix-two": lambda s: f"PAYPAL *SQ *{s}",
}

# Legitimate merchants that must not be taken for a blocked one: a blocked name inside a longer
# word, a near miss, or a shared first word.
LEGITIMATE = [
    "Alphabet", "Alphabet Inc.", "Betty's Bakery", "Better Bagels", "Abet Legal", "Bethesda Deli",
    "Alphabet Soup Co", "Shellfish Shack", "Shelly's Cafe", "Seashell Gifts", "Amazonia Grill",
    "Amazonas Travel", "Uberti Firearms", "Tuber Farms", "Ubers Garage",
    "Casinos of America", "Royale Casino", "Royal Casino", "Casino", "Royale", "PayPall Games",
    "Paypa", "Cafe", "Nero's Pizza", "Cafe Neroli", "Ikeaa", "Lkea Lamps",
    "Nike", "Lidl", "Target", "Apple Store", "Google Cloud", "Square Meals", "Toast Cafe",
    "Stripe Press", "SQ Consulting", "Spotify", "Sprouts", "Pineapple Express", "Alphabetical",
]  # fmt: skip


def casino_shapes() -> dict[str, str]:
    return {name: disguise("Casino Royale") for name, disguise in DISGUISES.items()}


# --- the rule itself ------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "merchant"), sorted(casino_shapes().items()))
def test_each_look_alike_shape_of_a_blocked_name_is_blocked(shape: str, merchant: str) -> None:
    assert blocked_by(merchant, BLOCKED) == "Casino Royale", ascii(merchant)


def test_every_blocked_name_in_every_shape_is_blocked() -> None:
    # "capital-i-for-l" turns "Shell" into "SheII": the I-for-l look-alike, also caught.
    for name in BLOCKED:
        for shape, disguise in DISGUISES.items():
            merchant = disguise(name)
            assert blocked_by(merchant, [name]) == name, (shape, ascii(merchant))


def test_legitimate_names_are_not_blocked_in_any_case_or_shape() -> None:
    # (Not lower case: "lkea" with a small L is a look-alike of "Ikea", and blocked.)
    harmless = [DISGUISES[s] for s in ("as-is", "upper", "trailing-dot", "suffix")]
    for name in LEGITIMATE:
        for disguise in harmless:
            assert blocked_by(disguise(name), BLOCKED) is None, name


def test_a_processor_prefix_in_a_blocked_name_blocks_the_merchant_however_it_is_paid() -> None:
    blocked = ["SQ *Joe's Coffee", "TST* Blue Bottle"]
    for merchant in ("Joe's Coffee", "JOES COFFEE", "PAYPAL *JOES COFFEE", "Blue Bottle #12"):
        assert blocked_by(merchant, blocked) is not None, merchant
    assert blocked_by("Joe's Pizza", blocked) is None
    # Blocking the processor itself blocks what is paid through it.
    assert blocked_by("PAYPAL *EBAY", ["PayPal"]) == "PayPal"
    # A prefix alone is a name, not a prefix.
    assert blocked_by("SQ *", ["SQ *"]) == "SQ *"


def test_a_blocked_name_with_no_letters_or_digits_blocks_nothing() -> None:
    assert blocked_by("Anything at all", ["***", "\u200b"]) is None


def test_long_repetitive_names_are_decided_by_whole_words() -> None:
    # Many near-starts of a blocked name (each a prefix of it) and none that completes it.
    blocked = ["a " * 24 + "b", "Casino Royale"]
    assert blocked_by("a " * 100, blocked) is None
    assert blocked_by("a " * 99 + "b", blocked) == blocked[0]
    assert blocked_by("Casino " * 28, blocked) is None
    assert blocked_by("\u200b" * 199 + "x", blocked) is None
    assert blocked_by("\u0301" * 200, blocked) is None


# --- at the server: simulate_purchase through the SDK client ---------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("AGENTCARD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (home / "policy.toml").write_text(f"blocked_merchants = {BLOCKED!r}\n".replace("'", '"'))
    return home


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_simulate_purchase_declines_every_shape_of_a_blocked_merchant(
    home: Path, mode: str
) -> None:
    server = create_server(Settings(issuer="sandbox", home=home))
    async with Client(server, mode=mode) as client:

        async def call(name: str, arguments: dict[str, Any]) -> tuple[bool, str]:
            with anyio.fail_after(20):
                result = await client.call_tool(name, arguments)
            block = result.content[0]
            assert isinstance(block, TextContent)
            return bool(result.is_error), block.text

        made = await client.call_tool("create_card", {"purpose": "t", "daily_limit_cents": 2000})
        assert made.structured_content is not None, made
        card_id = made.structured_content["id"]
        buy = {"card_id": card_id, "amount_cents": 100, "mcc": "saas"}
        for shape, merchant in casino_shapes().items():
            failed, text = await call("simulate_purchase", {**buy, "merchant": merchant})
            assert failed, (shape, text)
            assert text.startswith("merchant_blocked: "), (shape, text)
            assert 'reads as "Casino Royale"' in text, text
        for merchant in LEGITIMATE[:12]:
            failed, text = await call("simulate_purchase", {**buy, "merchant": merchant})
            assert not failed, (merchant, text)


# --- at the sandbox issuer: its own HTTP API ---------------------------------------------------


async def test_the_sandbox_declines_every_shape_of_a_blocked_merchant(
    inprocess: Sandbox,
) -> None:
    card = await new_card(inprocess)
    ok(await inprocess.client.patch("/v1/owner", json={"merchant_blocklist": BLOCKED}))
    for shape, merchant in casino_shapes().items():
        outcome = await swipe(inprocess, card["id"], merchant=merchant)
        assert outcome["reason"] == "merchant_blocked", (shape, ascii(merchant))
    for merchant in LEGITIMATE:
        outcome = await swipe(inprocess, card["id"], merchant=merchant)
        assert outcome["reason"] == "approved", merchant
