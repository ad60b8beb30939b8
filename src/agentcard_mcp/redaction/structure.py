"""JSON-shaped data masked at any depth: strings and keys as text, numbers as digit runs, card
fields by name, and a card number split over neighbouring values (or a key and its value).

``redact`` returns the *same object* when nothing needs masking. A container is first
serialized (in C, by pydantic-core) and checked as one text; when that holds nothing that can
need masking, the value comes back untouched without a walk.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Hashable, Iterable
from typing import Any

import pydantic_core

from ..card_brands import MAX_PAN, MIN_PAN, is_pan
from .pans import MASK, UUID, glued_pan, mask_pan, one_kind_digits
from .quick import json_may_need_masking
from .text import clean_ascii, normalize, redact_text

__all__ = ["clean_json_text", "is_card_field", "redact", "redact_quoting"]

_MAX_DIGITS = 2 * MAX_PAN + 2  # a longer number is masked whole, as in text

# -- card fields by name ---------------------------------------------------------------------

_CARD_FIELDS = frozenset(
    {
        "number", "pan", "card_number", "cardnumber", "primary_account_number", "raw_pan",
        "full_pan", "cvc", "cvv", "cvv2", "cvc2", "csc", "cvn", "security_code",
        "card_security_code", "card_verification_value", "card_verification_code", "cvc_code",
        "cvv_code", "exp", "exp_month", "exp_year", "exp_date", "exp_mm", "exp_yy",
        "card_expiry", "valid_thru", "valid_through", "good_thru", "good_through",
    }
)  # fmt: skip
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")  # as the quick check (quick.HINTS) reads it
_KEY_EDGES = string.punctuation + string.whitespace


@functools.lru_cache(maxsize=4096)
def is_card_field(key: str) -> bool:
    """Whether a field of this name holds card details, whatever its spelling
    (``cardNumber``, ``CVV2``, ``expiration-month``, ``expiryDate``)."""
    # A label written as a key keeps its punctuation ("cvc:", "exp.", "Valid thru:").
    bare = key.strip(_KEY_EDGES)
    name = _CAMEL.sub("_", bare).lower().replace("-", "_").replace(" ", "_")
    return (
        name in _CARD_FIELDS
        or name.startswith(("expiration", "expiry", "card_number", "security_code"))
        or name.endswith(("_card_number", "_pan", "_cvc", "_cvv", "_security_code"))
    )


@functools.lru_cache(maxsize=1024)
def _holds_codes(key: str) -> bool:
    """Whether a field of this name holds category codes (``mcc_allowlist``, ``categories``):
    four-digit codes by contract, the very shape of a card number's groups, so a list of them
    is never read as one number split over its items. Each item is still checked alone."""
    name = key.lower()
    return "mcc" in name or "categor" in name


# -- the walk --------------------------------------------------------------------------------


def redact(value: Any) -> Any:
    """``value`` (JSON-shaped data) with card details and secrets masked at any depth; the very
    same object when nothing needed masking."""
    if isinstance(value, dict | list | tuple) and _clean_json(value):
        return value
    return _walk(value)


def _clean_json(value: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> bool:
    try:
        text = pydantic_core.to_json(value).decode()
    except (ValueError, TypeError, pydantic_core.PydanticSerializationError):
        return False  # not plain JSON data: walk it
    return clean_json_text(text)


# Containers this deep or shallower are checked whole first when their parent was not clean,
# so one dirty entry of a page costs a walk of that entry only. Deeper, they are just walked:
# serializing at every level would cost depth x size.
_CHECKED_DEPTH = 3


def _walk(value: Any, depth: int = 0, chain: bool = True) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict | list | tuple):
        if 0 < depth <= _CHECKED_DEPTH and _clean_json(value):
            return value
        if isinstance(value, dict):
            return _redact_dict(value, depth)
        return _redact_list(value, depth, chain)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return _redact_number(value)


@functools.lru_cache(maxsize=4096)
def _masked_key(key: str) -> str:
    return redact_text(key)  # the same few keys come back in every result


def _redact_key(key: str) -> str:
    # The cache answers with the first equal key it saw, maybe another object: keep ours.
    masked = _masked_key(key)
    return key if masked == key else masked


def _redact_number(value: int | float) -> Any:
    """A JSON number read as a digit run: a PAN, a PAN with its CVC or expiry glued on."""
    if isinstance(value, float):
        if not value.is_integer() or abs(value) >= 1e40:
            return value
        value = int(value)
    if abs(value) < 10 ** (MIN_PAN - 1):
        return value
    digits = str(abs(value))
    if len(digits) > _MAX_DIGITS:
        return MASK
    pan = glued_pan(digits)
    return value if pan is None else mask_pan(pan)


def _mask_field(value: Any) -> Any:
    """A card field's value, masked whole: keep only absent values and a PAN's last four."""
    if value is None or value == "":
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(int(value)) if float(value).is_integer() else str(value)
    if isinstance(value, str):
        digits = "".join(ch for ch in normalize(value) if ch.isdigit())
        return mask_pan(digits) if is_pan(digits) else MASK
    return MASK


def _redact_list(items: list[Any] | tuple[Any, ...], depth: int, chain: bool) -> Any:
    out: list[Any] | None = None
    for i, item in enumerate(items):
        new = _walk(item, depth + 1)
        if new is not item:
            if out is None:
                out = list(items)
            out[i] = new
    if chain:
        split = _split_pans(enumerate(items if out is None else out))
        if split:
            out = list(items if out is None else out)
            for i, new in split.items():
                out[i] = new
    return items if out is None else out


def _redact_dict(mapping: dict[Any, Any], depth: int) -> Any:
    out: dict[Any, Any] | None = None
    for key, item in mapping.items():
        named = isinstance(key, str)
        new_key = _redact_key(key) if named else key
        if named and is_card_field(key):
            new = _mask_field(item)
        else:
            new = _walk(item, depth + 1, chain=not (named and _holds_codes(key)))
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
    current = mapping if out is None else out
    split = _split_pans(current.items())
    if split:
        out = current = {**current, **split}
    renamed = _split_over_keys(current)
    if renamed:
        out = {renamed.get((True, k), k): renamed.get((False, k), v) for k, v in current.items()}
    return mapping if out is None else out


def _split_over_keys(mapping: dict[Any, Any]) -> dict[tuple[bool, Any], Any]:
    """Replacements, keyed (True, key) for a key and (False, key) for its value, where a key
    and its value together hold a PAN (``{"dddd dddd": "dddd dddd"}``), as JSON text shows it.
    Only keys that start or end with a digit are looked at: nearly none do."""
    out: dict[tuple[bool, Any], Any] = {}
    for key, value in mapping.items():
        if isinstance(key, str) and _digit_edged(key) is not None:
            out.update(_split_pans((((True, key), key), ((False, key), value))))
    return out


def redact_quoting(text: str, data: Any, masked: Any) -> str:
    """``text`` that quotes the values of ``data`` (a summary of a call's arguments), masked:
    as text, and where it quotes a string that ``redact`` changed in ``masked``, with its
    masked form — which catches a card split over two arguments, whose text alone does not
    show it."""
    text = redact_text(text)
    if masked is not data:
        # After the text's own masking, which replacing first could hide a number from; a
        # replacement only ever takes digits away. Pieces of 1 to 3 digits give nothing away.
        changed = [pair for pair in _changed(data, masked) if sum(map(str.isdigit, pair[0])) > 3]
        for before, after in sorted(changed, key=lambda pair: -len(pair[0])):
            text = text.replace(before, after)
    return text


def _changed(before: Any, after: Any) -> Iterable[tuple[str, str]]:
    if before is after:
        return
    if isinstance(before, str) and isinstance(after, str) and len(before) > 1:
        yield before, after
    elif isinstance(before, dict) and isinstance(after, dict):
        for (_, old), new in zip(before.items(), after.values(), strict=False):
            yield from _changed(old, new)
    elif isinstance(before, list | tuple) and isinstance(after, list | tuple):
        for old, new in zip(before, after, strict=False):
            yield from _changed(old, new)


# -- the quick check of JSON text ------------------------------------------------------------


def clean_json_text(text: str) -> bool:
    """Whether JSON text certainly holds nothing to mask — in its strings, numbers and keys, or
    split over neighbouring strings. Exact in that direction only: False means "look closer".

    Twelve digits with no letter between them cover a number in one string or split over list
    items (``"4111","1111",...``: quotes and commas are no letters); a number split over a
    dict's values has keys between its pieces, and is looked for on its own: ``quick`` finds
    where one may be, and ``_split_hint`` counts its digits."""
    if not text.isascii() or "\\" in text:
        return False
    if not json_may_need_masking(text):  # one pass: nearly every result ends here
        return True
    return clean_ascii(text) and not _split_hint(text)


# In the text with its digits and most separators as "0": a string value ending in one, then a
# key, then a string value starting with one — but not an ISO timestamp ("2026-05-14T10:..."
# is "0000000000T0", passed over in C). The literal '0",' is what the regex engine looks for
# first, in C.
_EDGE_MARKS = b"0123456789!#$%&'()*+-./;<=>?@^_`|~"  # digits and the separators JSON leaves be
_DIGITS_AS_ZERO = bytes.maketrans(_EDGE_MARKS, b"0" * len(_EDGE_MARKS))
_SPLIT_SHAPE = re.compile(rb'0 *",\s*"[^"]{0,64}"\s*:\s*" *0(?!0{9}[T ]0)')
_DATE_OR_TIME = re.compile(
    r"(?<![0-9])(?:[0-9]{4}-[01][0-9]-[0-3][0-9]|[0-2]?[0-9]:[0-5][0-9])(?![0-9])"
)


def _split_hint(text: str) -> bool:
    """Whether neighbouring string values in JSON text could hold a PAN between them: digits at
    the end of one and the start of the next, 12 or more together, or a value that is all
    digits with another digit-led string after it. Dates and times lead no PAN piece."""
    digits_as_zero = text.encode("ascii").translate(_DIGITS_AS_ZERO)
    for match in _SPLIT_SHAPE.finditer(digits_as_zero):
        start = match.end() - 1
        while start < len(text) and _separator(text[start]):
            start += 1
        if not text[start : start + 1].isdigit() or _DATE_OR_TIME.match(text[start : start + 12]):
            continue  # the cheap rejections first: most neighbours are a date after an id
        before = _digits_back(text, match.start())
        if not before:
            continue
        after, end = _digits_forward(text, start)
        if before + after >= MIN_PAN:
            return True
        last = end - 1
        while last > start and text[last] == " ":
            last -= 1  # spaces at the value's end, as the walk strips them
        if text[start - 1] in '" ' and _SPLIT_SHAPE.match(digits_as_zero, last):
            return True  # all digits, and a digit-led string next: a chain of pieces
    return False


def _separator(ch: str) -> bool:
    return not ch.isalnum() and ch != '"'


def _digits_back(text: str, i: int) -> int:
    count = 0
    while i >= 0 and (text[i].isdigit() or _separator(text[i])):
        count += text[i].isdigit()
        i -= 1
    return count


def _digits_forward(text: str, i: int) -> tuple[int, int]:
    count = 0
    while i < len(text) and (text[i].isdigit() or _separator(text[i])):
        count += text[i].isdigit()
        i += 1
    return count, i


# -- a PAN split over neighbouring values ----------------------------------------------------

_EDGE = 4 * MAX_PAN  # characters looked at on each edge of a string: a PAN piece is near one
_GROUP = re.compile(r"[0-9]+")
_EDGE_RUN = re.compile(r"[\W_0-9]*")  # digits and separators, from where it is applied
_IPV4 = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_LETTER = re.compile(r"[^\W\d_]")
_SEPARATORS = string.punctuation + string.whitespace + "\u00a0\u00b7\u2022"
_DATE = _DATE_OR_TIME

# (key or index, "whole" | "lead" | "trail", its digits, the text of the edge)
Piece = tuple[Hashable, str, str, str]


def _split_pans(entries: Iterable[tuple[Hashable, Any]]) -> dict[Any, Any]:
    """Replacements for neighbouring string values (a dict's, or a list's items) that together
    hold a PAN which none holds alone.

    Neighbours chain through their edges: the digits at the end of one, those wholly made of
    digits, and the digits at the start of the next; the PAN is made of whole pieces. A piece
    is written as card digits are, with one kind of separator and whole groups inside
    (``dddd dddd``, ``dd dddd dd``, ``dddd``), and is no phone number (``+``), IP address,
    version, date or time. Only strings chain — the numbers
    next to each other in a result are amounts and counts."""
    values = dict(entries)
    chain: list[Piece] = []
    out: dict[Any, Any] = {}
    for key, value in values.items():
        text = _digit_edged(value)
        if text is None:
            _check_chain(chain, values, out)
            chain = []
            continue
        whole = _piece(text.strip()) if len(text) <= _EDGE else None
        if whole is not None:
            chain.append((key, "whole", whole, text))
            continue
        lead = _edge(text[:_EDGE])
        digits = _piece(lead) if lead else None
        if digits is not None:
            chain.append((key, "lead", digits, lead))
        _check_chain(chain, values, out)
        trail = _edge(text[-_EDGE:][::-1])[::-1]
        digits = _piece(trail) if trail else None
        chain = [(key, "trail", digits, trail)] if digits is not None else []
    _check_chain(chain, values, out)
    return out


def _digit_edged(value: Any) -> str | None:
    """The string (normalized) if it starts or ends with a digit, so could hold part of a PAN;
    dates, times and UUIDs, which fill results and are never PAN pieces, do not count."""
    if not isinstance(value, str) or not value:
        return None
    text = value if value.isascii() else normalize(value)
    core = text.strip(_SEPARATORS)
    if not core or not (core[0].isdigit() or core[-1].isdigit()) or _DATE.search(core):
        return None
    if "-" in core and UUID.search(core):
        return None
    return text


def _piece(text: str) -> str | None:
    """The digits of ``text`` if all of it can be a piece of a card number."""
    if not text or not text[0].isdigit() or not text[-1].isdigit() or _IPV4.fullmatch(text):
        return None
    if _LETTER.search(text):
        return None
    groups = _GROUP.findall(text)
    if len(groups) > 1 and not _card_groups(groups):
        return None
    return one_kind_digits(text)


def _card_groups(groups: list[str]) -> bool:
    """Whether digit groups can be a stretch of a card number as it is printed: whole groups
    of 4 (or 6, in 4-6-5) inside, cut ones at the ends, none longer than 6 — not a version
    (``6.4.20``), an amount (``1,500,000``) or a decimal (``1525579420.734086``)."""
    sizes = [len(group) for group in groups]
    return (
        all(size in (4, 6) for size in sizes[1:-1])
        and max(sizes) <= 6
        and any(size in (4, 6) for size in sizes)
    )


def _edge(text: str) -> str:
    """The digits and separators ``text`` starts with, from its first digit to its last; empty
    unless a digit comes first (after blanks): "+1 415", "$1,500" lead no piece."""
    run = _EDGE_RUN.match(text)
    edge = run.group().strip() if run else ""
    if not edge[:1].isdigit():
        return ""
    return edge.rstrip(_SEPARATORS)


def _check_chain(chain: list[Piece], values: dict[Any, Any], out: dict[Any, Any]) -> None:
    if len(chain) < 2 or sum(len(p[2]) for p in chain) < MIN_PAN:
        return
    for first in range(len(chain)):
        digits = ""
        for last in range(first, len(chain)):
            digits += chain[last][2]
            if len(digits) > MAX_PAN:
                break
            if last > first and len(digits) >= MIN_PAN and is_pan(digits):
                _replace(chain[first : last + 1], mask_pan(digits), values, out)


def _replace(pieces: list[Piece], masked: str, values: dict[Any, Any], out: dict[Any, Any]) -> None:
    """Each piece masked; the last four shown once, where they were (in the last piece)."""
    for index, (key, kind, _, edge) in enumerate(pieces):
        masked_here = masked if index == len(pieces) - 1 else MASK
        current = out.get(key, values[key])
        if kind == "whole":
            out[key] = masked_here
            continue
        text = current if current.isascii() else normalize(current)
        if kind == "lead" and text.lstrip().startswith(edge):
            at = text.index(edge)
            out[key] = text[:at] + masked_here + text[at + len(edge) :]
        elif kind == "trail" and text.rstrip().endswith(edge):
            at = text.rindex(edge)
            out[key] = text[:at] + masked_here + text[at + len(edge) :]
        else:
            out[key] = MASK  # already changed by another mask: hide it all
