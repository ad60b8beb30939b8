"""Which digit strings are card numbers: the card brands' IIN ranges and lengths, and Luhn.

The one place the brand table lives (DESIGN §6); redaction asks it through :func:`is_pan`.

Source: the IIN table of Wikipedia's "Payment card number" article
(https://en.wikipedia.org/wiki/Payment_card_number#Issuer_identification_number_(IIN),
as read in November 2026), which collects the schemes' own announcements; the national schemes
it lists late or not at all are from their issuers' notices: RuPay (NPCI: 60, 65, 81, 82, 508),
UzCard (8600, 5614), Humo (9860), Troy (9792), China T-Union / UnionPay 31 (19 digits).

Ranges overlap (RuPay's 60 lies inside Maestro's 56-69, most Elo ranges inside Visa, Maestro or
Discover): every row is kept as the source gives it, so the table can be checked line by line
against it, and a number matching any row counts.

Left out on purpose, because their prefixes are what machine numbers start with and masking
those would hide data the agent needs: UATP (prefix 1, 15 digits: epoch timestamps in
microseconds and nanoseconds start with 1) and GPN's 1946.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "BRANDS",
    "GLUED_LENGTHS",
    "MAX_PAN",
    "MIN_PAN",
    "Brand",
    "brand_of",
    "is_pan",
    "issuable",
    "luhn",
]


class Brand(NamedTuple):
    name: str
    low: str  # lowest prefix; prefixes compare as text of their own width
    high: str  # highest prefix, same width as ``low``
    lengths: frozenset[int]
    # A legacy range no card is issued in today: matched as a whole number only, never at the
    # start of a longer run (``GLUED_LENGTHS``), where its prefixes (1800, 2014, 2131, 2149)
    # are what epoch timestamps of 2027-2037 start with.
    legacy: bool = False


def _n(*lengths: int) -> frozenset[int]:
    return frozenset(lengths)


_ANY = _n(16, 17, 18, 19)
_MAESTRO = frozenset(range(12, 20))

BRANDS: tuple[Brand, ...] = (
    Brand("Visa", "4", "4", _n(13, 16, 19)),
    Brand("Mastercard", "51", "55", _n(16)),
    Brand("Mastercard", "2221", "2720", _n(16)),
    Brand("American Express", "34", "34", _n(15)),
    Brand("American Express", "37", "37", _n(15)),
    Brand("Discover", "6011", "6011", _ANY),
    Brand("Discover", "644", "649", _ANY),
    Brand("Discover", "65", "65", _ANY),
    Brand("Discover", "622126", "622925", _ANY),
    Brand("UnionPay", "62", "62", _ANY),
    Brand("UnionPay", "81", "81", _ANY),
    Brand("China T-Union", "31", "31", _n(19)),
    Brand("JCB", "3528", "3589", _ANY),
    Brand("JCB", "1800", "1800", _n(15), legacy=True),
    Brand("JCB", "2131", "2131", _n(15), legacy=True),
    Brand("Diners Club", "300", "305", frozenset(range(14, 20))),
    Brand("Diners Club", "3095", "3095", frozenset(range(14, 20))),
    Brand("Diners Club", "36", "36", frozenset(range(14, 20))),
    Brand("Diners Club", "38", "39", _ANY),
    Brand("Diners Club enRoute", "2014", "2014", _n(15), legacy=True),
    Brand("Diners Club enRoute", "2149", "2149", _n(15), legacy=True),
    Brand("Maestro", "50", "50", _MAESTRO),
    Brand("Maestro", "56", "69", _MAESTRO),
    Brand("Mir", "2200", "2204", _ANY),
    Brand("BORICA", "2205", "2205", _n(16)),
    Brand("RuPay", "60", "60", _n(16)),
    Brand("RuPay", "65", "65", _n(16)),
    Brand("RuPay", "81", "82", _n(16)),
    Brand("RuPay", "508", "508", _n(16)),
    Brand("RuPay", "353", "353", _n(16)),
    Brand("RuPay", "356", "356", _n(16)),
    Brand("Troy", "65", "65", _n(16)),
    Brand("Troy", "9792", "9792", _n(16)),
    Brand("UzCard", "8600", "8600", _n(16)),
    Brand("UzCard", "5614", "5614", _n(16)),
    Brand("Humo", "9860", "9860", _n(16)),
    Brand("Napas", "9704", "9704", _n(16, 19)),
    Brand("Verve", "506099", "506198", _n(16, 18, 19)),
    Brand("Verve", "507865", "507964", _n(16, 18, 19)),
    Brand("Verve", "650002", "650027", _n(16, 18, 19)),
    Brand("Elo", "401178", "401179", _n(16)),
    Brand("Elo", "431274", "431274", _n(16)),
    Brand("Elo", "438935", "438935", _n(16)),
    Brand("Elo", "451416", "451416", _n(16)),
    Brand("Elo", "457393", "457393", _n(16)),
    Brand("Elo", "457631", "457632", _n(16)),
    Brand("Elo", "504175", "504175", _n(16)),
    Brand("Elo", "506699", "506778", _n(16)),
    Brand("Elo", "509000", "509999", _n(16)),
    Brand("Elo", "627780", "627780", _n(16)),
    Brand("Elo", "636297", "636297", _n(16)),
    Brand("Elo", "636368", "636368", _n(16)),
    Brand("Elo", "650031", "650051", _n(16)),
    Brand("Elo", "650405", "650439", _n(16)),
    Brand("Elo", "650485", "650598", _n(16)),
    Brand("Elo", "650700", "650727", _n(16)),
    Brand("Elo", "650901", "650978", _n(16)),
    Brand("Elo", "651652", "651679", _n(16)),
    Brand("Elo", "655000", "655058", _n(16)),
    Brand("Hipercard", "606282", "606282", _n(16, 19)),
    Brand("Hipercard", "384100", "384100", _n(16, 19)),
    Brand("Hipercard", "384140", "384140", _n(16, 19)),
    Brand("Hipercard", "384160", "384160", _n(16, 19)),
    Brand("Dankort", "5019", "5019", _n(16)),
    Brand("InterPayment", "636", "636", _ANY),
    Brand("InstaPayment", "637", "639", _n(16)),
    Brand("LankaPay", "357111", "357111", _n(16)),
)

MIN_PAN = min(n for brand in BRANDS for n in brand.lengths)
MAX_PAN = max(n for brand in BRANDS for n in brand.lengths)


def _rows_for(head: str) -> tuple[Brand, ...]:
    """The rows a number starting with the two digits ``head`` may match."""
    return tuple(b for b in BRANDS if b.low[:2] <= head[: len(b.low)] <= b.high[:2])


# Looked up by a number's first two digits: a handful of rows to compare instead of all.
_BY_HEAD = {f"{i:02d}": _rows_for(f"{i:02d}") for i in range(100)}
# The lengths some current row allows, by first two digits, longest first: where a card
# number may end inside a longer run of digits (a PAN glued to its CVC or expiry).
GLUED_LENGTHS = {
    head: tuple(sorted({n for row in rows if not row.legacy for n in row.lengths}, reverse=True))
    for head, rows in _BY_HEAD.items()
}


def brand_of(digits: str) -> str | None:
    """The brand whose prefix and length ``digits`` (ASCII digits) has, Luhn aside."""
    rows = _BY_HEAD.get(digits[:2], ())
    n = len(digits)
    for row in rows:
        if n in row.lengths and row.low <= digits[: len(row.low)] <= row.high:
            return row.name
    return None


def issuable(digits: str, *, current: bool = False) -> bool:
    """Whether some brand issues numbers of this prefix and length (``current``: in a range
    still issued)."""
    rows = _BY_HEAD.get(digits[:2], ())
    n = len(digits)
    return any(
        n in row.lengths
        and row.low <= digits[: len(row.low)] <= row.high
        and not (current and row.legacy)
        for row in rows
    )


def luhn(digits: str) -> bool:
    """The Luhn (mod 10) check every card number passes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_pan(digits: str) -> bool:
    """Whether ``digits`` (ASCII digits only) is a card number: a brand's prefix and length,
    and a valid Luhn check digit."""
    return MIN_PAN <= len(digits) <= MAX_PAN and issuable(digits) and luhn(digits)
