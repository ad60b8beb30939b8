"""Card data and secrets are masked before anything leaves the server (DESIGN §6).

Pure functions, applied once at the output boundary (``CardServer.call_tool``, the audit log,
logging, the CLI's printed errors):

- ``redact(value)`` walks JSON-shaped data (dicts, lists, strings, numbers) at any depth, keys
  included. It returns the *same object* when there is nothing to mask, so the common clean
  result costs a walk and no copies.
- ``redact_text(text)`` masks one string.

What is masked, and how:

- **PANs** — runs of 13 to 19 digits, optionally grouped with spaces, tabs, dashes, dots,
  underscores or NBSPs, that start with a card brand's prefix, have a length that brand issues,
  and pass Luhn. Fullwidth and other Unicode digits are read through NFKC. JSON integers are
  checked the same way. A PAN split over a dict's neighbouring string fields (its first eight
  digits in one, the rest in the next) is caught too. Mask: ``•••• 4242`` (the last four, as
  every issuer shows).
- **Card fields by name** — number, pan, card_number, cvc, cvv, cvv2, cvc2, csc,
  security_code, exp, exp_month, exp_year, exp_date, expiry*, expiration* (any case,
  camelCase, dashes): the whole value becomes ``••••`` (``•••• 4242`` if it was a PAN). In free
  text, a CVC or expiry after its label (``cvc: 123``, ``"exp_month": 12``, ``exp 09/31``) too.
- **Secrets** — issuer keys (``ac_live_``, ``ac_test_``, ``ak_``, ``clw_``, ``lk_``, ``sk_``,
  ``rk_``, ``whsec_``), our own ``amcp_`` keys, and ``Bearer`` tokens: ``••••``.

Fail closed: a run of more than ``_MAX_RUN`` digits, or a string with more than
``_MAX_CANDIDATES`` digit runs long enough to be a PAN, is masked wholesale rather than checked
run by run — no real result looks like that, and checking it would cost time an attacker chooses.

Linear time: every pattern is a single character class repetition or a bounded alternation (no
nested quantifiers), so the ``re`` engine never backtracks more than a constant per position.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any

import pydantic_core

__all__ = [
    "MASK",
    "RedactingFilter",
    "clean_json_text",
    "install_log_redaction",
    "is_card_field",
    "is_pan",
    "mask_pan",
    "redact",
    "redact_text",
]

MASK = "••••"

_MIN_PAN, _MAX_PAN = 13, 19
_MAX_RUN = 2 * _MAX_PAN + 2  # digits; a longer run is masked whole (two PANs and a CVC fit)
_MAX_CANDIDATES = 256  # long-enough digit runs checked one by one in one string
_MAX_GAP = 3  # separator characters allowed between two digit groups of one number

# -- PAN recognition -------------------------------------------------------------------------

# (lowest prefix, highest prefix, lengths). Prefixes compare as integers of their own width.
_BRANDS: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),  # Visa
    ("51", "55", frozenset({16})),  # Mastercard
    ("2221", "2720", frozenset({16})),  # Mastercard 2-series
    ("34", "34", frozenset({15})),  # American Express
    ("37", "37", frozenset({15})),
    ("6011", "6011", frozenset(range(16, 20))),  # Discover
    ("644", "649", frozenset(range(16, 20))),
    ("65", "65", frozenset(range(16, 20))),
    ("622126", "622925", frozenset(range(16, 20))),
    ("3528", "3589", frozenset(range(16, 20))),  # JCB
    ("62", "62", frozenset(range(16, 20))),  # UnionPay
    ("50", "50", frozenset(range(13, 20))),  # Maestro
    ("56", "69", frozenset(range(13, 20))),
    ("36", "36", frozenset(range(14, 20))),  # Diners Club
    ("300", "305", frozenset(range(14, 20))),
    ("38", "39", frozenset(range(16, 20))),
    ("2200", "2204", frozenset(range(16, 20))),  # Mir
    ("1", "1", frozenset({15})),  # UATP
)


def _brand_allows(digits: str) -> bool:
    n = len(digits)
    return any(lo <= digits[: len(lo)] <= hi and n in lengths for lo, hi, lengths in _BRANDS)


def _luhn(digits: str) -> bool:
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
    return _MIN_PAN <= len(digits) <= _MAX_PAN and _brand_allows(digits) and _luhn(digits)


def mask_pan(digits: str) -> str:
    return f"{MASK} {digits[-4:]}"


# -- text ------------------------------------------------------------------------------------

_SEPARATORS = " \t_.\u00a0-"
# Zero-width and bidi formatting characters: invisible, so they may sit inside a number.
_INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
# JSON escapes of a tab, the Unicode spaces and dashes, and fullwidth digits.
_ESCAPED = re.compile(
    r"\\(?:t|u(00[aA]0|200[0-9a-fA-F]|202[fF]|205[fF]|3000|201[0-5]|2212|[fF][eE]63"
    r"|[fF][fF]1[0-9]))"
)


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    return "\t" if code is None else chr(int(code, 16))


_DASHES = {ord(c): "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2212\ufe63"}
_SEP = "[" + re.escape(_SEPARATORS) + "]"
# A candidate: digits and separators, starting and ending with a digit, with room for a PAN.
# One character-class repetition: linear, no backtracking beyond the trailing separators.
_LONG_RUN = re.compile(rf"[0-9][0-9{re.escape(_SEPARATORS)}]{{{_MIN_PAN - 2},}}[0-9]")
_GROUP = re.compile(r"[0-9]+")
_GAP_TOO_WIDE = re.compile(rf"{_SEP}{{{_MAX_GAP + 1},}}")

_SECRET_PREFIXES = ("ac_live_", "ac_test_", "ak_", "clw_", "lk_", "sk_", "rk_", "whsec_", "amcp_")
_SECRET_HINTS = (*_SECRET_PREFIXES, "bearer")
_SECRET = re.compile(
    r"(?<![A-Za-z0-9])(?:" + "|".join(_SECRET_PREFIXES) + r")[A-Za-z0-9_\-]{6,}"
    r"|(?<![A-Za-z0-9])(?i:bearer)[ \t]+[A-Za-z0-9._~+/\-]{8,}=*"
)

# A CVC or expiry after its label, in free text or JSON text ("cvc: 123", '"exp_month": 12').
_LABEL_HINTS = ("cv", "csc", "security", "exp", "valid")
_LABELLED = re.compile(
    r"(?<![A-Za-z0-9])("
    r"cvc2?|cvv2?|cvn|csc|security[ _-]?code"
    r"|exp(?:iry|iration|ires?)?(?:[ _-]?(?:date|month|year|mm|yy))?"
    r"|valid[ _-]?(?:thru|through|until)"
    r")(?![A-Za-z0-9])([^A-Za-z0-9\n]{0,5})"
    r"[0-9]{1,4}(?:[ ]?[/-][ ]?[0-9]{2,4})?(?![0-9]|[/-][0-9])",
    re.IGNORECASE,
)


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


def _normalize(text: str) -> str:
    """ASCII digits and separators for whatever Unicode spelling the text used: NFKC folds
    fullwidth digits and NBSP-like spaces; dashes and other scripts' digits are mapped here."""
    folded = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text)).translate(_DASHES)
    return folded if folded.isascii() else folded.translate(_UNICODE_DIGITS)


def redact_text(text: str) -> str:
    """``text`` with every PAN, labelled CVC or expiry, and secret masked; ``text`` itself when
    there is none."""
    if len(text) < 7:  # "cvc 123" is the shortest thing masked
        return text
    plain = text.isascii() and "\\" not in text
    if plain and _clean_ascii(text):
        return text
    readable = text
    if "\\" in readable:
        # JSON quoted inside a string ('{"n": "4111\\u00a01111..."}'): an escaped digit or
        # separator is still one to whoever reads it.
        readable = _ESCAPED.sub(_unescape, readable)
    if not readable.isascii():
        readable = _normalize(readable)
    result = _redact_ascii_digits(readable)
    return text if result == readable else result


# Everything a clean text is checked for, in C: runs of 13 digits or separators (after this
# translation, runs of "0") ...
_RUN_CLASSES = bytes.maketrans(b"0123456789 \t_.-", b"0" * 15)
_THIRTEEN = b"0" * _MIN_PAN
# ... and, in lower case, the start of a label, a card field's name or a secret ("exp" but not
# our own "expires_at"). Each hint is looked for from a rare part of it, so that the search
# stops at few places: the regex's branches start with letters that JSON keys seldom hold
# (the engine skips to them in C), and the hints with no rare letter are found with str.find.
# What must come before the part found, and that the hint starts a word, is checked on the
# few matches.
_HINTS = re.compile(r"v(?:alid|erif|e_)|b(?:er|earer)|urit|xp(?!ires_at)|k_|w(?:_|hsec_)")
_LITERAL_HINTS = ("cv", "csc", "c_t", "pan", "p_")
_HINT_HEADS = {  # part found -> the letters before it that make the hint
    "ve_": ("ac_li",),  # ac_live_
    "ber": ("num", "cardnum"),  # number, cardnumber
    "urit": ("sec",),  # security
    "xp": ("e",),  # exp
    "k_": ("a", "l", "s", "r"),  # ak_, lk_, sk_, rk_
    "w_": ("cl",),  # clw_
    "c_t": ("a",),  # ac_test_
    "p_": ("amc",),  # amcp_
}


def _clean_ascii(text: str) -> bool:
    """Whether ASCII text without escapes certainly holds nothing to mask: a quick, exact
    rejection of the common case (false alarms only cost the full check)."""
    return _THIRTEEN not in _shape(text) and not _has_hint(text)


def _shape(text: str) -> bytes:
    """ASCII text with every digit and separator as "0", everything else as it was."""
    return text.encode("ascii").translate(_RUN_CLASSES)


def _has_hint(text: str) -> bool:
    lowered = text.lower()
    for literal in _LITERAL_HINTS:
        at = lowered.find(literal)
        while at != -1:
            if _hint_at(text, lowered, literal, at):
                return True
            at = lowered.find(literal, at + 1)
    return any(
        _hint_at(text, lowered, match.group(), match.start()) for match in _HINTS.finditer(lowered)
    )


def _hint_at(text: str, lowered: str, found: str, at: int) -> bool:
    for head in _HINT_HEADS.get(found, ("",)):
        start = at - len(head)
        if start >= 0 and lowered.startswith(head, start) and _word_starts(text, start):
            return True
    return False


def _word_starts(text: str, i: int) -> bool:
    """A word starts at ``i``: after a non-alphanumeric, or in camelCase ("cardNumber"), as the
    labels, secrets and field names that are masked all do. Ids ("01JDCV3K") don't."""
    if i == 0 or not text[i - 1].isalnum():
        return True
    return text[i].isupper() and text[i - 1].islower()


def _redact_ascii_digits(text: str) -> str:
    result = _mask_runs(text)
    lowered = result.lower()
    result = _sub_near(result, lowered, _LABEL_HINTS, _LABELLED, _keep_label)
    lowered = result.lower()
    return _sub_near(result, lowered, _SECRET_HINTS, _SECRET, lambda _: MASK)


def _keep_label(match: re.Match[str]) -> str:
    return match.group(1) + match.group(2) + MASK


def _sub_near(
    text: str,
    lowered: str,
    hints: tuple[str, ...],
    pattern: re.Pattern[str],
    replace: Callable[[re.Match[str]], str],
) -> str:
    """``pattern.sub`` tried only where one of ``hints`` occurs: ``str.find`` skips clean text
    far faster than the regex engine's own scan can."""
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


def _mask_runs(text: str) -> str:
    candidates = _LONG_RUN.finditer(text)
    pieces: list[str] = []
    end = 0
    for count, match in enumerate(candidates):
        if count == _MAX_CANDIDATES:
            # Fail closed on input built to be slow: mask the rest wholesale, in C.
            pieces.append(_LONG_RUN.sub(MASK, text[end:]))
            return "".join(pieces)
        masked = _mask_run(match.group(), text, match.start())
        if masked is not None:
            pieces.append(text[end : match.start()])
            pieces.append(masked)
            end = match.end()
    if not pieces:
        return text
    pieces.append(text[end:])
    return "".join(pieces)


def _mask_run(run: str, text: str, start: int) -> str | None:
    """The run with its PANs masked, or None to keep it. A run whose separators are too wide to
    be one number is handled part by part."""
    if len(run) > 4 * _MAX_RUN and sum(map(run.count, "0123456789")) > _MAX_RUN:
        return MASK  # far too many digits for a card: fail closed before any Python-level work
    if _GAP_TOO_WIDE.search(run):
        parts = re.split(f"({_GAP_TOO_WIDE.pattern})", run)
        masked = [_mask_run(p, text, -1) if i % 2 == 0 else None for i, p in enumerate(parts)]
        if all(m is None for m in masked):
            return None
        return "".join(m if m is not None else p for m, p in zip(masked, parts, strict=True))
    groups = [(m.start(), m.end(), m.group()) for m in _GROUP.finditer(run)]
    n = sum(len(g) for _, _, g in groups)
    if n < _MIN_PAN:
        return None
    if start > 0 and text[start - 1] == "+" and n <= 15:
        return None  # an E.164 phone number: no card number is written with a "+"
    if n > _MAX_RUN:
        return MASK
    hits = list(_hits([g for _, _, g in groups]))
    if not hits:
        return None
    first, last = hits[0], hits[-1]
    digits = "".join(g for _, _, g in groups)
    lo = groups[first[0]][0]
    hi = groups[last[1] - 1][1]
    # One mask over every hit; it shows the last four of the one that ends last (when hits
    # nest, 16 digits and the 17 they begin can both be PANs: all of it is masked).
    pan_end = sum(len(g) for _, _, g in groups[: last[1]])
    return run[:lo] + mask_pan(digits[:pan_end]) + run[hi:]


def _hits(groups: list[str]) -> Iterator[tuple[int, int]]:
    """(first group, end group) of every PAN made of whole neighbouring groups: a PAN is
    written in groups of four, or of 4-6-5, or in one, and next to it may stand other numbers
    (a CVC after it, say)."""
    for i in range(len(groups)):
        digits = ""
        for j in range(i, len(groups)):
            digits += groups[j]
            if len(digits) > _MAX_PAN:
                break
            if len(digits) >= _MIN_PAN and is_pan(digits):
                yield i, j + 1


# -- structures ------------------------------------------------------------------------------

_CARD_FIELDS = frozenset(
    {
        "number", "pan", "card_number", "cardnumber", "primary_account_number", "raw_pan",
        "full_pan", "cvc", "cvv", "cvv2", "cvc2", "csc", "cvn", "security_code",
        "card_security_code", "card_verification_value", "exp", "exp_month", "exp_year",
        "exp_date", "exp_mm", "exp_yy", "card_expiry",
    }
)  # fmt: skip
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")  # as the quick check in _clean_ascii reads it


@functools.lru_cache(maxsize=4096)
def is_card_field(key: str) -> bool:
    """Whether a field of this name holds card details, whatever its spelling
    (``cardNumber``, ``CVV2``, ``expiration-month``, ``expiryDate``)."""
    name = _CAMEL.sub("_", key.strip()).lower().replace("-", "_").replace(" ", "_")
    return (
        name in _CARD_FIELDS
        or name.startswith(("expiration", "expiry", "card_number", "security_code"))
        or name.endswith(("_card_number", "_pan", "_cvc", "_cvv", "_security_code"))
    )


def redact(value: Any) -> Any:
    """``value`` (JSON-shaped data) with card details and secrets masked at any depth; the very
    same object when nothing needed masking.

    A container is first serialized (in C, by pydantic-core) and checked as one text: when that
    holds no digit run, hint or split, nothing inside it can need masking, and the value comes
    back untouched without a walk. Otherwise every part is checked on its own."""
    if isinstance(value, dict | list | tuple) and _clean_json(value):
        return value
    return _walk(value)


# Neighbouring string values, the first ending and the next starting with a digit.
# In the shape (see _shape): a string ending in a digit or separator, then a string value
# starting with one. The literal '0",' leads, which the regex engine finds in C.
_SPLIT_SHAPE = re.compile(rb'0",\s*"[^"]{0,64}"\s*:\s*"0')
_DATE_OR_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}:[0-9]{2}")
_SEPARATOR_CHARS = frozenset(" \t_.-")


def _clean_json(value: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> bool:
    try:
        text = pydantic_core.to_json(value).decode()
    except (ValueError, TypeError, pydantic_core.PydanticSerializationError):
        return False  # not plain JSON data: walk it
    return clean_json_text(text)


def clean_json_text(text: str) -> bool:
    """Whether JSON text certainly holds nothing to mask — in its strings, numbers and keys, or
    split over neighbouring strings. Exact in that direction only: False means "look closer"."""
    if not text.isascii() or "\\" in text:
        return False
    shape = _shape(text)
    return _THIRTEEN not in shape and not _has_hint(text) and not _split_hint(text, shape)


def _split_hint(text: str, shape: bytes) -> bool:
    """Whether neighbouring string values in JSON text could hold a PAN between them: digits at
    the end of one and the start of the next, 13 or more together, or a value that is all
    digits with another digit-led string after it. Dates and times lead no PAN piece."""
    for match in _SPLIT_SHAPE.finditer(shape):
        before = _digits_back(text, match.start())
        start = match.end() - 1
        while start < len(text) and text[start] in _SEPARATOR_CHARS:
            start += 1
        if not before or not text[start : start + 1].isdigit() or _DATE_OR_TIME.match(text, start):
            continue
        after, end = _digits_forward(text, start)
        if before + after >= _MIN_PAN:
            return True
        if _SPLIT_SHAPE.match(shape, end - 1):
            return True  # all digits, and a digit-led string next: a chain of pieces
    return False


def _digits_back(text: str, i: int) -> int:
    count = 0
    while i >= 0 and (text[i].isdigit() or text[i] in _SEPARATOR_CHARS):
        count += text[i].isdigit()
        i -= 1
    return count


def _digits_forward(text: str, i: int) -> tuple[int, int]:
    count = 0
    while i < len(text) and (text[i].isdigit() or text[i] in _SEPARATOR_CHARS):
        count += text[i].isdigit()
        i += 1
    return count, i


# Containers this deep or shallower are checked whole first when their parent was not clean,
# so one dirty entry of a page costs a walk of that entry only. Deeper, they are just walked:
# serializing at every level would cost depth x size.
_CHECKED_DEPTH = 3


def _walk(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict | list | tuple):
        if 0 < depth <= _CHECKED_DEPTH and _clean_json(value):
            return value
        if isinstance(value, dict):
            return _redact_dict(value, depth)
        return _redact_list(value, depth)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return _redact_number(value)


@functools.lru_cache(maxsize=4096)
def _redact_key(key: str) -> str:
    return redact_text(key)  # the same few keys come back in every result


def _redact_number(value: int | float) -> Any:
    if isinstance(value, float):
        if not value.is_integer() or abs(value) >= 1e20:
            return value
        digits = str(int(abs(value)))
    else:
        if not 10 ** (_MIN_PAN - 1) <= abs(value) < 10**_MAX_PAN:
            return value
        digits = str(abs(value))
    return mask_pan(digits) if is_pan(digits) else value


def _mask_field(value: Any) -> Any:
    """A card field's value, masked whole: keep only absent values and a PAN's last four."""
    if value is None or value == "":
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, str):
        digits = "".join(ch for ch in _normalize(value) if ch.isdigit())
        return mask_pan(digits) if is_pan(digits) else MASK
    return MASK


def _redact_list(items: list[Any] | tuple[Any, ...], depth: int) -> Any:
    out: list[Any] | None = None
    for i, item in enumerate(items):
        new = _walk(item, depth + 1)
        if new is not item:
            if out is None:
                out = list(items)
            out[i] = new
    return items if out is None else out


def _redact_dict(mapping: dict[Any, Any], depth: int) -> Any:
    out: dict[Any, Any] | None = None
    for key, item in mapping.items():
        new_key = _redact_key(key) if isinstance(key, str) else key
        card_field = isinstance(key, str) and is_card_field(key)
        new = _mask_field(item) if card_field else _walk(item, depth + 1)
        if new is not item or new_key is not key:
            if out is None:
                out = {}
                for k, v in mapping.items():
                    if k is key:
                        break
                    out[k] = v
            out[new_key] = new
        elif out is not None:
            out[key] = item
    split = _split_pans(mapping if out is None else out)
    if split:
        out = dict(mapping if out is None else out)
        out.update(split)
    return mapping if out is None else out


# -- a PAN split over neighbouring fields ----------------------------------------------------

_LEADING = re.compile(rf"[0-9](?:[0-9]|{_SEP}{{1,{_MAX_GAP}}}(?=[0-9]))*")
_TRAILING = re.compile(rf"[0-9](?:[0-9]|{_SEP}{{1,{_MAX_GAP}}}(?=[0-9]))*$")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}:[0-9]{2}")
_EDGE = 4 * _MAX_PAN  # characters looked at on each edge of a string: a PAN piece is near one
_WHOLE = re.compile(rf"{_SEP}*[0-9](?:[0-9]|{_SEP})*")


def _split_pans(mapping: dict[Any, Any]) -> dict[Any, Any]:
    """Replacements for string fields that together hold a PAN which none holds alone.

    Neighbouring string values chain through their edges: the digits at the end of one, those
    wholly made of digits, and the digits at the start of the next. Only strings chain — the
    numbers next to each other in a result are amounts and counts, not card digits."""
    pieces: list[tuple[Any, str, str]] = []  # (key, "whole"|"lead"|"trail", groups text)
    replacements: dict[Any, Any] = {}
    for key, value in mapping.items():
        text = _digit_edged(value)
        if text is None:
            _check_chain(pieces, mapping, replacements)
            pieces = []
            continue
        if len(text) <= _EDGE and _WHOLE.fullmatch(text):
            pieces.append((key, "whole", text))
            continue
        lead = _LEADING.match(text[:_EDGE])
        if lead:
            pieces.append((key, "lead", lead.group()))
        _check_chain(pieces, mapping, replacements)
        trail = _TRAILING.search(text[-_EDGE:])
        pieces = [(key, "trail", trail.group())] if trail else []
    _check_chain(pieces, mapping, replacements)
    return replacements


def _digit_edged(value: Any) -> str | None:
    """The string (normalized) if it starts or ends with a digit, so could hold part of a PAN;
    dates and times, which fill results and are never PAN pieces, do not count."""
    if not isinstance(value, str) or not value:
        return None
    text = value if value.isascii() else _normalize(value)
    core = text.strip(_SEPARATORS)
    if not core or not (core[0].isdigit() or core[-1].isdigit()) or _DATE.search(core):
        return None
    return text


def _check_chain(
    pieces: list[tuple[Any, str, str]], mapping: dict[Any, Any], out: dict[Any, Any]
) -> None:
    if len(pieces) < 2:
        return
    owners: list[int] = []  # for every group, the piece it came from
    groups: list[str] = []
    for index, (_, _, text) in enumerate(pieces):
        for group in _GROUP.findall(text):
            groups.append(group)
            owners.append(index)
    if sum(len(g) for g in groups) < _MIN_PAN or len(groups) > _MAX_RUN:
        return
    for first, end in _hits(groups):
        touched = sorted(set(owners[first:end]))
        if len(touched) < 2:
            continue  # one field alone: redact_text masks it
        if (
            owners[first - 1 : first] == owners[first : first + 1]
            or owners[end - 1 : end] == (owners[end : end + 1])
        ):
            continue  # a PAN split over fields is made of whole pieces, not bits of them
        last4 = mask_pan("".join(groups[first:end]))
        for index in touched:
            key, kind, text = pieces[index]
            current = out.get(key, mapping[key])
            out[key] = last4 if kind == "whole" else _replace_edge(current, kind, text, last4)


def _replace_edge(value: str, kind: str, edge: str, masked: str) -> str:
    text = value if value.isascii() else _normalize(value)
    if kind == "lead" and text.startswith(edge):
        return masked + text[len(edge) :]
    if kind == "trail" and text.endswith(edge):
        return text[: len(text) - len(edge)] + masked
    return MASK  # already changed by another mask: hide it all


# -- logging ---------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, traceback and stack with ``redact_text`` (and never drops a
    record). The message is rendered here, so arguments can't smuggle a PAN past it."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub_record(record)
        return True


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """Masks ``record`` in place. Its ``msg`` and ``args`` keep their shape wherever that is
    safe: some formatters read the arguments themselves (uvicorn's access log unpacks its five),
    so a clean record is left as it is and a masked one keeps masked arguments when the message
    they render is clean; only then does the masked message replace both (``args`` empty)."""
    if getattr(record, "_agentcard_redacted", False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep the parts, masked
        record.msg, record.args = redact_text(f"{record.msg!s} {record.args!r}"), ()
    else:
        clean = redact_text(message)
        if clean is not message:
            record.msg, record.args = _masked_parts(record, clean)
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact_text(record.exc_text)
        record.exc_info = None  # formatters print exc_text; the live exception stays out
    if record.stack_info:
        record.stack_info = redact_text(record.stack_info)
    record._agentcard_redacted = True
    return record


def _masked_parts(record: logging.LogRecord, clean: str) -> tuple[str, tuple[Any, ...]]:
    """The record's format and its arguments each masked, if together they render clean;
    else the masked message alone."""
    if isinstance(record.args, tuple):
        fmt = redact_text(str(record.msg))
        args = tuple(redact_text(a) if isinstance(a, str) else a for a in record.args)
        try:
            shown = fmt % args
        except Exception:  # a masked argument no longer fits its placeholder (%d)
            return clean, ()
        if redact_text(shown) is shown:
            return fmt, args
    return clean, ()


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Redacts every log record of this process, once (safe to call again).

    The filter sits on our package logger and the root logger. Filters on a logger are not
    inherited by its children nor applied to records propagated from other loggers (the SDK's,
    httpx's, uvicorn's), so every record is also scrubbed where it is made, by the record
    factory."""
    for logger in (logging.getLogger(), logging.getLogger("agentcard_mcp")):
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "_agentcard_redacting", False):
        logging.setLogRecordFactory(_redacting_factory(factory))


def _redacting_factory(
    make: Callable[..., logging.LogRecord],
) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return scrub_record(make(*args, **kwargs))

    factory._agentcard_redacting = True  # type: ignore[attr-defined]
    return factory
