"""Generated card data in every shape redaction must catch (DESIGN §6, issue 12), and everyday
values it must leave alone. Deterministic and cheap: one seeded ``random.Random``, no
Hypothesis, so the tests that use it can afford tens of thousands of cases.

Every row of ``card_brands.BRANDS`` is drawn in turn, at each length it issues; each number is
written in one shape (separators of any punctuation or whitespace, several between groups;
the brand's own layout with mixed separators; glued to its CVC or expiry; zero-padded;
fullwidth; zero-width characters between digits; split over list items or a dict's fields).
"""

from __future__ import annotations

import json
import random
import re
import string
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from agentcard_mcp.card_brands import BRANDS, luhn

__all__ = [
    "SEPARATORS",
    "SPLIT_SHAPES",
    "TEXT_SHAPES",
    "Case",
    "bury",
    "cases",
    "digits_of",
    "everyday_values",
    "pan_of",
    "survivors",
]

SEPARATORS = [" ", "-", ".", "_", "\n", "/", ",", ":", "|", "+", "\u00b7", "\u2022", "    ",
              "\t", "\u00a0", " - ", ", ", " / ", "--", "\u2013", "\u3000", " | ", "\r\n",
              " \u2022 ", "'", '", "', "\\", ";", "*", "~", "=", "#", "......", " - - - ",
              "\n\n\n\n\n\n\n"]  # fmt: skip
TEXT_SHAPES = ["plain", "fours", "layout", "groups", "mixed", "fullwidth", "zero-width",
               "padded", "glued-cvc", "glued-expiry", "glued-both", "layout-glued"]  # fmt: skip
SPLIT_SHAPES = ["list", "fields"]


def luhn_complete(body: str) -> str:
    """``body`` plus the check digit that makes it pass Luhn."""
    return next(body + d for d in "0123456789" if luhn(body + d))


def pan_of(rng: random.Random, row: int, length: int) -> str:
    brand = BRANDS[row]
    low, high = int(brand.low), int(brand.high)
    prefix = str(rng.randint(low, high)).zfill(len(brand.low))
    size = length - len(prefix) - 1
    return luhn_complete(prefix + str(rng.randrange(10**size)).zfill(size))


def _grouped(pan: str, sizes: list[int]) -> list[str]:
    parts, at = [], 0
    for size in sizes:
        if at < len(pan):
            parts.append(pan[at : at + size])
            at += size
    if at < len(pan):
        parts.append(pan[at:])
    return parts


def _layout(pan: str) -> list[int]:
    """How cards print their number: 4-6-5 (15), 4-6-4 (14), else fours."""
    return {15: [4, 6, 5], 14: [4, 6, 4]}.get(len(pan), [4] * 5)


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)


@dataclass(frozen=True)
class Case:
    row: int  # of card_brands.BRANDS
    pan: str
    shape: str
    separator: str
    value: Any  # the text, or a list / dict for a split


def _spelled(pan: str, shape: str, sep: str, rng: random.Random) -> str:
    cvc = str(rng.randint(100, 9999))
    expiry = f"{rng.randint(1, 12):02d}{rng.randint(26, 35)}"
    if shape == "plain":
        return pan
    if shape == "fours":
        return sep.join(_grouped(pan, [4] * 5))
    if shape == "layout":
        return sep.join(_grouped(pan, _layout(pan)))
    if shape == "groups":  # any grouping, one separator
        return sep.join(_grouped(pan, [rng.randint(1, 7) for _ in range(8)]))
    if shape == "mixed":  # the card's layout, a different separator in each gap
        parts = _grouped(pan, _layout(pan))
        out = parts[0]
        for part in parts[1:]:
            out += rng.choice(SEPARATORS) + part
        return out
    if shape == "fullwidth":
        return _fullwidth(sep.join(_grouped(pan, [4] * 5)))
    if shape == "zero-width":
        return rng.choice("\u200b\u200d\u2060\ufeff").join(_grouped(pan, [4] * 5))
    if shape == "padded":
        return pan.zfill(19 if len(pan) < 19 else 20)
    if shape == "glued-cvc":
        return pan + cvc
    if shape == "glued-expiry":
        return pan + expiry
    if shape == "glued-both":
        return pan + expiry + cvc
    assert shape == "layout-glued"  # the last group carries the CVC: "4111 1111 1111 1111123"
    return sep.join(_grouped(pan, _layout(pan))) + cvc


def _split(pan: str, shape: str, sep: str, rng: random.Random) -> Any:
    cuts = sorted(rng.sample(range(2, len(pan) - 1), rng.randint(1, 4)))
    pieces = [pan[i:j] for i, j in zip([0, *cuts], [*cuts, len(pan)], strict=True)]
    if rng.random() < 0.3:  # a separator inside a piece too: "4111 1111", "1111 1111"
        pieces = [sep.join(_grouped(p, [4] * 5)) for p in pieces]
    if rng.random() < 0.3:  # words around the ends: "card starts 4111" ... "1111 and that's all"
        pieces[0] = "card starts " + pieces[0]
        pieces[-1] += " and that is all"
    if shape == "list":
        return pieces
    return {"id": "led_01JD3K4M5N6P7Q8R9S0T",
            **{f"part{i}": piece for i, piece in enumerate(pieces)},
            "amount_cents": 1500}  # fmt: skip


def cases(n: int, *, seed: int = 20261130, splits: bool = True) -> list[Case]:
    """``n`` card numbers: every brand row and length in turn, each in the next shape and
    separator (the cycles are of coprime lengths, so every pairing comes round)."""
    rng = random.Random(seed)
    shapes = TEXT_SHAPES + (SPLIT_SHAPES if splits else [])
    rows = [(row, length) for row, brand in enumerate(BRANDS) for length in sorted(brand.lengths)]
    out = []
    for i in range(n):
        row, length = rows[i % len(rows)]
        pan = pan_of(rng, row, length)
        shape = shapes[(i // len(rows) + i) % len(shapes)]
        sep = SEPARATORS[i % len(SEPARATORS)]
        if BRANDS[row].legacy and shape.startswith("glued"):
            shape = "layout-glued"  # legacy ranges are no prefix of a longer run (card_brands)
        if shape in SPLIT_SHAPES:
            out.append(Case(row, pan, shape, sep, _split(pan, shape, sep, rng)))
        else:
            out.append(Case(row, pan, shape, sep, _spelled(pan, shape, sep, rng)))
    return out


WORDS = ["please", "charge", "card", "the", "for", "order", "#", "thanks", ":", "(", ")", ",",
         "Merchant", "said", "is", "on", "ref"]  # fmt: skip
LEAVES: list[Any] = [None, True, False, 0, 7, -3, 1500, 0.5, "", "ok", "led_01JD3K4M5N",
                     "2026-11-22T10:00:00Z", "ACME"]  # fmt: skip


def _random_json(rng: random.Random, budget: int) -> Any:
    if budget <= 0 or rng.random() < 0.4:
        return rng.choice(LEAVES)
    if rng.random() < 0.5:
        return [_random_json(rng, budget // 2) for _ in range(rng.randint(0, 2))]
    keys = [_key(rng) for _ in range(2)]
    return {key: _random_json(rng, budget // 2) for key in keys[: rng.randint(0, 2)]}


def _key(rng: random.Random) -> str:
    """A random field name, but none that names category codes ("mccs"): their lists are
    never read as a split card (redaction.structure)."""
    key = "".join(rng.choices(string.ascii_lowercase, k=4))
    return key.replace("mcc", "mxc")


def bury(case: Case, rng: random.Random) -> Any:
    """The case somewhere inside random JSON, at a random depth: as a string, in a sentence,
    as a dict key, as JSON text inside a string, or as a JSON number (unbroken digits)."""
    value = case.value
    if isinstance(value, str):
        where = rng.randrange(5 if value.isdigit() and len(value) <= 24 else 4)
        if where == 1:
            words = " ".join(rng.choices(WORDS, k=3))
            value = f"{words} {value} {' '.join(rng.choices(WORDS, k=2))}"
        elif where == 2:
            value = {f"card {value}": "x"}
        elif where == 3:
            value = json.dumps({"card": {"details": value}})
        elif where == 4:
            value = int(value)
    node: Any = value
    for _ in range(rng.randint(0, 6)):
        if rng.random() < 0.5:
            node = {_key(rng): node, "other": _random_json(rng, 4)}
        else:
            node = [_random_json(rng, 4), node][:: rng.choice([1, -1])]
    return node


_ESCAPE = re.compile(r"\\+u([0-9a-fA-F]{4})")


def digits_of(text: str) -> str:
    """Every digit of ``text`` in order, however spelled (NFKC; JSON-escaped)."""
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isdigit())


def survivors(pans: list[str], output: Any) -> list[str]:
    """The PANs that can still be read from ``output`` (data, or text), digits joined across
    everything between them."""
    text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    digits = digits_of(text)
    return [pan for pan in pans if pan in digits]


# -- everyday values that are no card ---------------------------------------------------------


def everyday_values(n: int, seed: int = 20261122) -> list[tuple[str, Any]]:
    """``n`` values of the kinds a result, log or audit line holds that look numeric and are no
    card: years, quarters, versions, timestamps, order numbers, dates, phone numbers, amounts,
    UUIDs, ids, category lists; and the year-only expiry look-alikes."""
    rng = random.Random(seed)
    crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    start = datetime(2001, 9, 9, tzinfo=UTC)  # the first 13-digit epoch millisecond

    def when() -> datetime:  # until 2032: later epoch nanoseconds start like Diners/JCB PANs
        return start + timedelta(seconds=rng.uniform(0, 31 * 365 * 86400))

    def digits(k: int) -> str:
        return "".join(rng.choice(string.digits) for _ in range(k))

    def phone() -> str:
        local = digits(rng.randint(8, 11))
        return rng.choice([
            f"+{rng.randint(1, 99)} {local[:3]} {local[3:6]} {local[6:]}",
            f"+{rng.randint(1, 999)}{local}",
            f"({local[:3]}) {local[3:6]}-{local[6:10]}",
            f"{local[:3]}-{local[3:6]}-{local[6:]}",
            f"+{rng.randint(1, 99)}-{local[:3]}-{local[3:6]}-{local[6:]}",
            f"00{rng.randint(1, 99)} {local[:2]} {local[2:6]} {local[6:]}",
            f"tel. {local[:4]} / {local[4:]}",
        ])  # fmt: skip

    def year() -> str:
        y = rng.randint(1990, 2040)
        month, day, other = rng.randint(1, 12), rng.randint(10, 28), rng.randint(1990, 2040)
        return rng.choice([str(y), f"FY{y}", f"Q3 exp {y} offsite", f"valid until {y}",
                           f"expires {y}", f"exp. {y}-{month:02d}-{day}",
                           f"since {y}, {other} and {y + 1}"])  # fmt: skip

    def quarter() -> str:
        y, q = rng.randint(2000, 2040), rng.randint(1, 4)
        return rng.choice([f"Q{q} {y}", f"{y}-Q{q}", f"{y} Q{q}", f"Q{q}/{y % 100}"])

    def version() -> str:
        parts = [str(rng.randint(0, 40)) for _ in range(rng.randint(2, 4))]
        return rng.choice(["v", "", "version ", "mcp "]) + ".".join(parts)

    def timestamp() -> Any:
        moment = when()
        epoch = moment.timestamp()
        return rng.choice([
            moment.isoformat(timespec="microseconds"),
            moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            moment.strftime("%Y-%m-%d %H:%M:%S"),
            moment.strftime("%Y-%m-%d %H:%M:%S,%f")[:-3],
            moment.strftime("%d/%m/%Y %H:%M"),
            moment.strftime("%Y%m%dT%H%M%SZ"),
            int(epoch), int(epoch * 1000), str(int(epoch * 1000)), int(epoch * 1_000_000),
            str(int(epoch * 1_000_000_000)), f"{epoch:.6f}",
        ])  # fmt: skip

    def order() -> str:
        return rng.choice([
            f"{rng.randint(100, 199)}-{digits(7)}-{digits(7)}",  # Amazon-style
            f"#{rng.randint(1001, 999999)}",
            f"ORD-{when():%Y%m%d}-{rng.randint(1, 9999):04d}",
            f"PO {rng.randint(10000, 99999)}/{when():%Y}",
            f"order {rng.randint(1, 10**8)}",
            f"INV-{when():%Y}-{rng.randint(1, 99999):05d}",
        ])  # fmt: skip

    def amount() -> Any:
        cents = rng.randint(1, 10**11)
        return rng.choice([cents, f"${cents / 100:,.2f}", f"{cents / 100:.2f} EUR",
                           f"{cents:,} cents", f"{cents // 100:,}.{cents % 100:02d}"])  # fmt: skip

    makers: dict[str, Callable[[], Any]] = {
        "year": year,
        "quarter": quarter,
        "version": version,
        "timestamp": timestamp,
        "order number": order,
        "iso date": lambda: when().date().isoformat(),
        "phone": phone,
        "amount": amount,
        "uuid": lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "UUID": lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper(),
        "ledger id": lambda: f"led_{''.join(rng.choice(crockford) for _ in range(26))}",
        "card id": lambda: f"card_01K{''.join(rng.choice(crockford) for _ in range(23))}",
        "last4": lambda: digits(4),
        "ip": lambda: ".".join(str(rng.randint(0, 255)) for _ in range(4)),
        "mcc list": lambda: {"mcc_allowlist": rng.sample(_MCCS, rng.randint(2, 8))},
    }
    kinds = list(makers)
    return [(kind := kinds[i % len(kinds)], makers[kind]()) for i in range(n)]


_MCCS = ["5411", "5812", "5814", "5999", "4111", "4121", "5311", "5541", "3501", "3058", "6011",
         "7372", "5732", "5912", "4511", "5651", "6300", "3526", "5192", "5533"]  # fmt: skip
