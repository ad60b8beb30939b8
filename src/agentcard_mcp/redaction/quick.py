"""The quick check: whether ASCII text certainly holds nothing to mask, in one pass.

Nearly every text that reaches the boundary is clean, so this decides the cost of masking:
one search of a linear-time engine (the Rust ``regex`` crate, through pydantic-core, already a
dependency) for anything that could need masking. It is exact in one direction only: a text it
passes holds nothing the full masking would change; a text it stops may still be clean, and is
looked at closer. What it looks for:

- **Twelve digits with no letter between them** (``TWELVE_DIGITS``): the least a card number
  needs, written with any separators, or split over a list's items (``"4111", "1111", ...``:
  quotes and commas are no letters).
- **The start of a label, card field or secret** (``HINTS``), where a word starts — after a
  character that is no letter or digit, or at a lower-to-upper case change (``cardNumber``) —
  in any case. Words that merely contain one (``decided``, ``expires_at``, ``01JDCV3K``) pass.
- In JSON text, **neighbouring string values that could hold a card number between them**
  (``SPLIT_EDGE``): a value ending in a digit or separator, a key, and a value starting with
  one — not with an ISO timestamp, which follows most ids. ``structure`` counts the digits.

The engine has no look-around, so "not followed by" is spelled out as what may follow instead.
"""

from __future__ import annotations

from pydantic_core import SchemaValidator, core_schema

from ..card_brands import MIN_PAN

__all__ = ["HINTS", "SPLIT_EDGE", "TWELVE_DIGITS", "json_may_need_masking", "may_need_masking"]

TWELVE_DIGITS = rf"[0-9](?:[^A-Za-z0-9]*[0-9]){{{MIN_PAN - 1}}}"


# The words below hold lower-case letters, "_", " " and "-" only: each is itself in a pattern.
def _any_case(text: str) -> str:
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in text)


def _not_followed_by(tail: str) -> str:
    """What may follow a word instead of ``tail`` (in any case), as a pattern that consumes it:
    the end, a first character that differs, or one that matches and then the rest differing —
    the engine's stand-in for ``(?!tail)``."""
    first, rest = tail[0], tail[1:]
    differs = f"[^{first}{first.upper()}]"
    then = f"|{_any_case(first)}{_not_followed_by(rest)}" if rest else ""
    return f"(?:$|{differs}{then})"


# (word, a pattern for what must follow it, empty for anything), each in any case where a word
# starts. Labels: CVC, CVV, CVN, CSC, CID, security code, exp..., valid thru/through/until, good
# thru/through. Card fields: number, pan, cvc..., verification..., security_code, exp... (not
# expires_at: our own field, no card's expiry). Secrets: the issuers' key prefixes, our amcp_
# keys, Bearer tokens.
HINTS: tuple[tuple[str, str], ...] = (
    ("cv", ""),
    ("csc", ""),
    ("cid", "(?:$|[^A-Za-z]|[cC][oO][dD][eE])"),  # not "cidr"; "cidcode" is a CVC label
    ("pan", ""),
    ("number", ""),
    ("cardnumber", ""),
    ("securit", ""),
    ("verif", ""),
    ("exp", _not_followed_by("ires_at")),  # expires_at: ours, no card's
    ("valid", ""),
    ("good thr", ""),
    ("good_thr", ""),
    ("good-thr", ""),
    ("goodthr", ""),
    ("bearer", ""),
    ("ac_live_", ""),
    ("ac_t", ""),
    ("ak_", ""),
    ("lk_", ""),
    ("sk_", ""),
    ("rk_", ""),
    ("clw_", ""),
    ("whsec_", ""),
    ("amcp_", ""),
)

# The separators JSON writes as they are (digits too): what may stand at a PAN piece's edge.
_MARK = r"[0-9!#$%&'()*+\-./;<=>?@^_`|~]"
_NOT_MARK = r"[^0-9!#$%&'()*+\-./;<=>?@^_`|~]"
_SPACE = r"[ \t\n\r\x0b\x0c]*"
# After the next value's first mark: not nine more, then "T" or " ", then one more (a timestamp,
# "2026-05-14T10:...": its digits and dashes are eleven marks with a T after the tenth).
_NO_TIMESTAMP = (
    rf"(?:{_MARK}{{0,8}}(?:{_NOT_MARK}|$)"  # fewer than ten marks
    rf"|{_MARK}{{9}}(?:[^T ]|$)"  # ten, and no T or space after them
    rf"|{_MARK}{{9}}[T ](?:{_NOT_MARK}|$))"  # ten, a T, and no mark after it
)
# Spaces may stand at a value's edges, any number: the walk strips them from each piece.
SPLIT_EDGE = rf'{_MARK} *",{_SPACE}"[^"]{{0,64}}"{_SPACE}:{_SPACE}" *{_MARK}{_NO_TIMESTAMP}'


def _hints() -> str:
    starts, camel = [], []
    for word, then in HINTS:
        rest = _any_case(word[1:]) + then
        starts.append(_any_case(word[0]) + rest)
        camel.append(word[0].upper() + rest)
    return rf"(?:^|[^A-Za-z0-9])(?:{'|'.join(starts)})|[a-z](?:{'|'.join(camel)})"


def _search(pattern: str) -> SchemaValidator:
    # A str pattern is searched for anywhere in the string; the Rust engine runs in linear time
    # (and refuses look-around, so this fails at import rather than fall back to Python's re).
    return SchemaValidator(core_schema.str_schema(pattern=pattern, regex_engine="rust-regex"))


_TEXT = _search(f"{TWELVE_DIGITS}|{_hints()}")
_JSON = _search(f"{TWELVE_DIGITS}|{_hints()}|{SPLIT_EDGE}")


def may_need_masking(text: str) -> bool:
    """Whether ASCII ``text`` (without escapes) may hold something to mask."""
    return _TEXT.isinstance_python(text)


def json_may_need_masking(text: str) -> bool:
    """``may_need_masking``, and for JSON text, a card number that may be split over string
    values (to be counted by ``structure``)."""
    return _JSON.isinstance_python(text)
