"""One string masked: card numbers (``pans``), a CVC or expiry after its label, and secrets.

Labels: a CVC after CVC, CVV, CVV2, CVN, CSC, CID, security code, card verification value/code
(``cvc_code: 123`` too); an expiry after exp, expiry, expiration, expires (on), exp date,
valid thru/through/until, good thru/through. An expiry is a month and a year together —
``09/31``, ``09 / 2031``, ``09-31``, ``0931``, ``092031``, ``2031-09`` — so a year alone
(``Q3 exp 2024 offsite``, ``valid until 2025``) and a whole date (``expires 2026-11-23``) are
left alone. A label that names the part (``exp_month: 9``, ``expirationYear: 2031``) masks
that part.

Cost: ASCII text is first checked in one linear pass for the only things that can need masking
(``quick``: twelve digits with no letter between them; the start of a label, card field or
secret), which clean text — nearly all of it — passes. Labels and secrets are then looked for
only where one of their hints occurs (``str.find``), with patterns of bounded repetitions and
no nesting.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator

from .. import invisible
from .pans import MASK, mask_chains
from .quick import may_need_masking

__all__ = ["clean_ascii", "normalize", "redact_text"]

# Zero-width and bidi formatting characters: invisible, so they may sit inside a number.
# Unicode's default-ignorable characters (joiners, bidi controls, variation selectors, tags):
# dropped, so "4<U+034F>111 1111 ..." is read as the card number a reader sees. The fillers
# that stand in for a space (U+3164, U+2800, ...) are read as one.
# (Two classes: the one beyond the BMP triples the cost of a scan, and is needed only when
# such a character is there at all.)
_INVISIBLE = re.compile(invisible.ignorable_class(astral=False))
_INVISIBLE_ASTRAL = re.compile(invisible.ignorable_class(astral=True))
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_FILLERS = re.compile(f"[{''.join(sorted(invisible.FILLERS))}]")  # a regex: str.translate
# with a table is several times slower on non-ASCII text
# JSON escapes, however often escaped again ('{"n": "4111\\n1111..."}' inside a string): an
# escaped digit, space or separator is one to whoever reads it.
_ESCAPED = re.compile(r'\\{1,8}(?:([nrtfb/"])|u([0-9a-fA-F]{4}))')
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "b": "\b", "/": "/", '"': '"'}
_DASHES = {ord(c): "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2212\ufe63"}


def _unescape(match: re.Match[str]) -> str:
    simple, code = match.groups()
    return _ESCAPES[simple] if simple is not None else chr(int(code, 16))


class _Digits(dict[int, str]):
    """``str.translate`` table: any Unicode decimal digit to its ASCII digit, computed once per
    character (the table would have hundreds of entries to build up front)."""

    def __missing__(self, codepoint: int) -> str:
        value = unicodedata.decimal(chr(codepoint), None)
        # Every character seen is remembered, digit or not: a Python call per character of
        # every non-ASCII text would cost more than the rest of the masking.
        self[codepoint] = chr(codepoint) if value is None else str(value)
        return self[codepoint]


_UNICODE_DIGITS = _Digits()


def normalize(text: str) -> str:
    """ASCII digits for whatever Unicode spelling the text used: NFKC folds fullwidth digits
    and odd spaces, other scripts' digits are mapped here, invisible characters dropped."""
    visible = _INVISIBLE.sub("", _FILLERS.sub(" ", text))
    if _ASTRAL.search(visible):
        visible = _INVISIBLE_ASTRAL.sub("", visible)
    folded = unicodedata.normalize("NFKC", visible).translate(_DASHES)
    return folded if folded.isascii() else folded.translate(_UNICODE_DIGITS)


def redact_text(text: str) -> str:
    """``text`` with every PAN, labelled CVC or expiry, and secret masked; ``text`` itself when
    there is none."""
    if len(text) < 7:  # "cvc 123" is the shortest thing masked
        return text
    if text.isascii() and "\\" not in text and clean_ascii(text):
        return text
    readable = text
    if "\\" in readable:
        readable = _ESCAPED.sub(_unescape, readable)
    if not readable.isascii():
        readable = normalize(readable)
    result = mask_all(readable)
    return text if result == readable else result


def clean_ascii(text: str) -> bool:
    """Whether ASCII text without escapes certainly holds nothing to mask: a quick, exact
    rejection of the common case (false alarms only cost the full check)."""
    return not may_need_masking(text)


def mask_all(text: str) -> str:
    """Normalized ``text`` with card numbers, labelled CVCs and expiries, and secrets masked."""
    result = mask_chains(text)
    result = _sub_near(result, _LABEL_HINTS, _LABELLED, _keep_label)
    return _sub_near(result, _SECRET_HINTS, _SECRET, lambda _: MASK)


# -- labels ----------------------------------------------------------------------------------

_W = r"[ _-]?"  # between the words of a label: "security code", "security_code", "exp-date"
_CVC_LABEL = rf"(?:cvc2?|cvv2?|cvn|csc|cid|security{_W}code)(?:{_W}code)?"
_EXP = (
    rf"(?:exp(?:iry|iration|ires|ire)?|valid{_W}(?:thru|through|until|to)"
    rf"|good{_W}(?:thru|through))"
)
_MONTH_LABEL = rf"exp(?:iry|iration)?{_W}(?:month|mon|mm)"
_YEAR_LABEL = rf"exp(?:iry|iration)?{_W}(?:year|yr|yyyy|yy)"
_EXPIRY_LABEL = rf"{_EXP}(?:{_W}(?:date|on))?"
_BETWEEN = r"[^A-Za-z0-9\n]{0,5}"  # ": ", '": "', " = ", " - "
_MM = r"(?:0?[1-9]|1[0-2])"
_YEAR = r"(?:20[0-9]{2}|[0-9]{2})"
_EXPIRY = (  # MM/YY, MM / YYYY, MMYY, MMYYYY, YYYY-MM
    rf"(?:{_MM} ?[/.-] ?{_YEAR}|(?:0[1-9]|1[0-2])(?:20)?[0-9]{{2}}"
    rf"|20[0-9]{{2}}[/-](?:0[1-9]|1[0-2]))"
)
_END = r"(?![0-9]|[/.-][0-9])"  # not a longer number or a whole date
_LABELLED = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    rf"({_CVC_LABEL}(?![A-Za-z0-9]){_BETWEEN})[0-9]{{3,4}}{_END}"
    rf"|({_MONTH_LABEL}(?![A-Za-z0-9]){_BETWEEN}){_MM}{_END}"
    rf"|({_YEAR_LABEL}(?![A-Za-z0-9]){_BETWEEN}){_YEAR}{_END}"
    rf"|({_EXPIRY_LABEL}(?![A-Za-z0-9]){_BETWEEN}){_EXPIRY}{_END}"
    r")",
    re.IGNORECASE,
)
_LABEL_HINTS = ("cv", "csc", "cid", "security", "exp", "valid", "good")


def _keep_label(match: re.Match[str]) -> str:
    label = next(group for group in match.groups() if group is not None)
    return label + MASK


# -- secrets ---------------------------------------------------------------------------------

_SECRET_PREFIXES = ("ac_live_", "ac_test_", "ak_", "clw_", "lk_", "sk_", "rk_", "whsec_", "amcp_")
_SECRET_HINTS = (*_SECRET_PREFIXES, "bearer")
_SECRET = re.compile(
    r"(?<![A-Za-z0-9])(?:" + "|".join(_SECRET_PREFIXES) + r")[A-Za-z0-9_\-]{6,}"
    r"|(?<![A-Za-z0-9])(?i:bearer)[ \t]+[A-Za-z0-9._~+/\-]{8,}=*"
)


def _sub_near(
    text: str,
    hints: tuple[str, ...],
    pattern: re.Pattern[str],
    replace: Callable[[re.Match[str]], str],
) -> str:
    """``pattern.sub`` tried only where one of ``hints`` occurs: ``str.find`` skips clean text
    far faster than the regex engine's own scan can."""
    lowered = text.lower()
    starts = sorted({i for hint in hints for i in _find_all(lowered, hint)})
    if not starts:
        return text
    if len(lowered) != len(text):  # lower() changed the length: positions don't line up
        return pattern.sub(replace, text)
    pieces: list[str] = []
    end = 0
    for start in starts:
        if start < end:
            continue
        match = pattern.match(text, start)
        if match is not None:
            pieces += (text[end:start], replace(match))
            end = match.end()
    return "".join(pieces) + text[end:] if pieces else text


def _find_all(text: str, needle: str) -> Iterator[int]:
    i = text.find(needle)
    while i != -1:
        yield i
        i = text.find(needle, i + 1)
