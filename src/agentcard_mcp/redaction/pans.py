"""Card numbers in text: how they are written, and how they are found in linear time.

Text here is already normalized (``text.normalize``): ASCII digits, invisible characters gone.

- A **chain** is digits and anything that is not a letter (punctuation, whitespace, symbols:
  ``/ , : | + · • ' "``), starting and ending with a digit: the most a number written with
  separators can span. Chains are found by one character-class repetition (``_CHAIN``).
- A chain is cut into **pieces** where a gap is too wide to sit inside one number: more than
  ``_MAX_GAP`` characters, or more than ``_MAX_BLANK`` of whitespace and one repeated mark
  ("four or more spaces" and "several separators" fit; a paragraph break between numbers, or
  the indentation between the items of a JSON list, does not).
- In a piece, a card number is made of **whole digit groups**: one group alone (a PAN, or a PAN
  glued to the digits after it — its CVC or expiry — or a zero-padded PAN); or a whole run of
  groups that share one separator, in any grouping (whitespace counts as one kind, so
  ``4111  1111 1111`` has one separator); or groups in a card's own layout (4-4-4-4[-1..3],
  4-4-4-1..3, 4-6-5, 4-6-4, and 4-4-4-4 or 4-6-5 with digits glued to the last group),
  whatever the separators and wherever they stand. Dates, times, amounts, order and phone
  numbers mix separators or group otherwise (``2026-11-22 10:00:00``, ``1,234.56``,
  ``(415) 555-2671``, ``112-5678901-2345678``), and so don't read as cards.
- A number written right after a ``+`` with at most 15 digits is a phone number (E.164).

Then it must have a brand's prefix and length, and pass Luhn (``card_brands``).

Fail closed: a group of more than ``_MAX_RUN`` digits, a chain longer than ``_MAX_CHAIN``
characters and a piece of more than ``_MAX_GROUPS`` groups are masked whole (no real result
looks like that), and after ``budget`` groups in one text the remaining chains are masked whole,
so an attacker cannot choose how long masking takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..card_brands import GLUED_LENGTHS, MAX_PAN, MIN_PAN, is_pan, issuable, luhn

__all__ = ["MASK", "UUID", "Budget", "glued_pan", "mask_chains", "mask_pan", "one_kind_digits"]

MASK = "••••"

_MAX_RUN = 2 * MAX_PAN + 2  # digits in one group: two PANs and a CVC fit
_MAX_CHAIN = 4096  # characters of one chain
_MAX_GROUPS = 64  # digit groups in one piece
_MAX_GAP = 5  # characters between two groups of one number ("4111 -- 1111")
_MAX_BLANK = 16  # ... when they are all whitespace ("4111\n\n    1111")
_GLUE_MIN = 3  # digits glued after a PAN for them to be taken as its CVC or expiry

_CHAIN = re.compile(rf"[0-9][\W_0-9]{{{MIN_PAN - 2},}}[0-9]")
_PARTS = re.compile(r"([^0-9]+)")
_WIDE = re.compile(rf"[^0-9]{{{_MAX_GAP + 1},}}")
# Where a list of category codes opens, just before a chain: '"mcc_allowlist": ["',
# "categories=(", "'mccs': ['".
_CODE_LIST = re.compile(
    r"(?i)(?:mcc|categor)[a-z_]{0,24}['\"]?[ ]{0,2}[:=][ ]{0,2}[\[(][ ]{0,2}['\"]?\Z"
)
_QUOTED_GAP = re.compile(r"([^0-9'\"]{0,8}['\"][^0-9]{0,8})")
# A UUID (RFC 9562: 8-4-4-4-12 hex digits): its dash-joined digit groups are random hex that
# reads as a card number once in a few hundred UUIDs, so no number is looked for inside one.
UUID = re.compile(
    r"(?<![0-9A-Za-z])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"(?![0-9A-Za-z])"
)


def mask_pan(digits: str) -> str:
    return f"{MASK} {digits[-4:]}"


def glued_pan(run: str) -> str | None:
    """The card number one unbroken run of digits holds, or None: the run itself, zero padding
    taken off; or a number at its start with at least ``_GLUE_MIN`` more digits after it."""
    digits = run.lstrip("0")
    n = len(digits)
    if n < MIN_PAN:
        return None
    if n <= MAX_PAN and is_pan(digits):
        return digits
    for length in GLUED_LENGTHS.get(digits[:2], ()):
        head = digits[:length]
        if n - length >= _GLUE_MIN and issuable(head, current=True) and luhn(head):
            return head
    return None


def one_kind_digits(run: str) -> str | None:
    """The digits of ``run`` (digits and separators, a digit at each end) when it is written
    with one kind of separator or none, in gaps narrow enough for one number; else None —
    dates, amounts and phone numbers mix kinds (``1,234.56``, ``(415) 555-2671``)."""
    parts = _PARTS.split(run)
    gaps = parts[1::2]
    if len({_gap_key(gap) for gap in gaps}) > 1 or not all(map(_joinable, gaps)):
        return None
    return "".join(parts[0::2])


def _joinable(gap: str) -> bool:
    """Whether a gap can stand between two groups of one number: up to ``_MAX_GAP``
    characters of anything; or up to ``_MAX_BLANK`` of whitespace and one repeated mark
    ("4111 ...... 1111", "4111 - - - 1111")."""
    if len(gap) <= _MAX_GAP:
        return True
    return len(gap) <= _MAX_BLANK and len(set(gap.replace("\t", " ").replace("\n", " "))) <= 2


class Budget:
    """The Python-level work allowed on one text: digit groups examined (chains and cuts count
    one each), ``BASE + len(text) // PER``; past it the rest is masked whole, in C. Real text
    stays far below it: in clean text, a chain is a timestamp or a long number now and then."""

    BASE, PER = 1024, 512
    __slots__ = ("left", "spent")

    def __init__(self, text_length: int) -> None:
        self.left = self.BASE + text_length // self.PER
        self.spent = 0

    def spend(self, groups: int) -> None:
        self.left -= groups
        self.spent += groups


def mask_chains(text: str, budget: Budget | None = None) -> str:
    """``text`` with every card number in it masked; ``text`` itself when there is none.
    ``budget`` (made for the text when not given) records the work done."""
    budget = Budget(len(text)) if budget is None else budget
    uuids = UUID.finditer(text) if text.count("-") >= 4 else iter(())
    uuid = next(uuids, None)
    pieces: list[str] = []
    end = 0
    for match in _CHAIN.finditer(text):
        while uuid is not None and uuid.end() <= match.start():  # both come in text order
            uuid = next(uuids, None)
        if uuid is not None and uuid.start() <= match.start() and match.end() <= uuid.end():
            continue
        if budget.left <= 0:  # fail closed on input built to be slow: the rest, in C
            pieces.append(_CHAIN.sub(MASK, text[end:]))
            return "".join(pieces)
        budget.spend(1)
        start, chain = match.start(), match.group()
        after_plus = start > 0 and text[start - 1] == "+"
        if chain.isdigit():  # one unbroken run: the common case, and the cheap one
            masked = _mask_run(chain, after_plus)
        elif _CODE_LIST.search(text, max(0, start - 64), start):
            masked = _mask_items(chain, budget)
        else:
            masked = _mask_chain(chain, after_plus, budget)
        if masked is not None:
            pieces += (text[end:start], masked)
            end = match.end()
    if not pieces:
        return text
    pieces.append(text[end:])
    return "".join(pieces)


def _mask_run(run: str, after_plus: bool) -> str | None:
    if len(run) > _MAX_RUN:
        return MASK
    pan = glued_pan(run)
    if pan is None or (after_plus and len(run) <= 15):
        return None
    return mask_pan(pan)


def _mask_items(chain: str, budget: Budget) -> str | None:
    """A quoted list of category codes (``"mcc_allowlist": ["5411", "5812"]``): each item on
    its own, never the items together (see ``structure._holds_codes``)."""
    parts = _QUOTED_GAP.split(chain)
    masked = [_mask_chain(part, False, budget) if i % 2 == 0 else None for i, part in
              enumerate(parts)]  # fmt: skip
    if all(m is None for m in masked):
        return None
    return "".join(p if m is None else m for p, m in zip(parts, masked, strict=True))


def _mask_chain(chain: str, after_plus: bool, budget: Budget) -> str | None:
    if len(chain) > _MAX_CHAIN:
        return MASK
    out: list[str] = []
    changed = False
    begin = 0
    for cut_start, cut_end in _cuts(chain):
        budget.spend(1)
        piece = chain[begin:cut_start]
        masked = _mask_piece(piece, after_plus and begin == 0, budget)
        changed |= masked is not None
        out += (piece if masked is None else masked, chain[cut_start:cut_end])
        begin = cut_end
    return "".join(out) if changed else None


def _cuts(chain: str) -> Iterator[tuple[int, int]]:
    """Where the chain is cut into pieces: its gaps too wide for one number; then its end."""
    for gap in _WIDE.finditer(chain):
        if not _joinable(gap.group()):
            yield gap.start(), gap.end()
    yield len(chain), len(chain)


def _mask_piece(piece: str, after_plus: bool, budget: Budget) -> str | None:
    if not piece:
        return None
    parts = _PARTS.split(piece)
    groups, gaps = parts[0::2], parts[1::2]
    if sum(map(len, groups)) < MIN_PAN:
        return None
    if len(groups) > _MAX_GROUPS:
        return MASK
    budget.spend(len(groups))
    hits = list(_hits(groups, gaps, after_plus))
    if not hits:
        return None
    starts = []
    at = 0
    for k, group in enumerate(groups):
        starts.append(at)
        at += len(group) + (len(gaps[k]) if k < len(gaps) else 0)
    spans = sorted((starts[i], starts[j] + len(groups[j]), pan) for i, j, pan in hits)
    out: list[str] = []
    end = 0
    while spans:
        lo, hi, pan = spans.pop(0)
        last_end, shown = hi, pan
        while spans and spans[0][0] < hi:  # overlapping numbers: one mask over them all
            _, other_hi, other = spans.pop(0)
            if other is None or shown is None:
                shown = None
            elif other_hi >= last_end:
                shown, last_end = other, other_hi
            hi = max(hi, other_hi)
        out += (piece[end:lo], MASK if shown is None else mask_pan(shown))
        end = hi
    out.append(piece[end:])
    return "".join(out)


# (first group, last group, the PAN — None to mask the groups whole)
Hit = tuple[int, int, str | None]


def _hits(groups: list[str], gaps: list[str], after_plus: bool) -> Iterator[Hit]:
    for i, group in enumerate(groups):
        if len(group) > _MAX_RUN:
            yield i, i, None
            continue
        phone = after_plus and i == 0
        if len(group) >= MIN_PAN:
            pan = glued_pan(group)
            if pan is not None and not (phone and len(group) <= 15):
                yield i, i, pan
        if len(group) == 4 and i + 2 < len(groups):
            yield from _card_layout(groups, i, phone)
    yield from _one_separator(groups, gaps, after_plus)


_ITEM = "'"  # starts the kind of a gap with a quote in it: between a list's quoted items


def _gap_key(gap: str) -> str:
    """A separator as a kind: whitespace of any length counts as one. A gap with a quote in
    it is the boundary of a quoted item (``'dddd dddd', 'dddd dddd'``): a kind of its own,
    spelled exactly, that goes with one other kind, the one inside the items."""
    if "'" in gap or '"' in gap:
        return _ITEM + gap
    core = "".join(gap.split())
    return core or " "


def _run_end(keys: list[str], lo: int, items: bool) -> int:
    """The last group of the run of one kind of separator that starts at group ``lo`` — with
    ``items``, and one kind of item boundary besides."""
    kinds: dict[bool, str] = {}
    hi = lo
    while hi < len(keys):
        key = keys[hi]
        seen = kinds.setdefault(items and key.startswith(_ITEM), key)
        if seen != key:
            break
        hi += 1
    return hi


def _one_separator(groups: list[str], gaps: list[str], after_plus: bool) -> Iterator[Hit]:
    """Each whole run of groups joined by one kind of separator, read as one number. (Part of
    such a run is a number only in a card's layout, ``_card_layout``: "ref 12 dddd dddd dddd
    dddd" holds one, "112-5678901-2345678" — an order number — does not.)"""
    keys = [_gap_key(gap) for gap in gaps]
    n = len(groups)
    runs = [(lo, _run_end(keys, lo, items=True)) for lo in _run_starts(keys, True)]
    if any(key.startswith(_ITEM) for key in keys):  # and quotes as a number's own separator
        runs += [(lo, _run_end(keys, lo, items=False)) for lo in _run_starts(keys, False)]
    if len(set(gaps)) > len(set(keys)):  # and one separator spelled alike: "5621; 6363;6819"
        runs += [(lo, _run_end(gaps, lo, items=False)) for lo in _run_starts(gaps, False)]
    for lo, hi in runs:
        # A group at either end may belong to what stands beside the run instead: where the
        # kind of separator changes ("... 06 2026-11-22"), or where its gap is spelled unlike
        # the rest ("4816; ['357', '111', ...").
        firsts, lasts = [lo], [hi]
        if hi > lo + 1 and (lo > 0 or gaps[lo] != gaps[lo + 1]):
            firsts.append(lo + 1)
        if hi > lo + 1 and (hi < n - 1 or gaps[hi - 1] != gaps[hi - 2]):
            lasts.append(hi - 1)
        for first in firsts:
            for last in lasts:
                if last <= first:
                    continue
                digits = "".join(groups[first : last + 1])
                phone = after_plus and first == 0 and len(digits) <= 15
                if MIN_PAN <= len(digits) <= MAX_PAN and not phone and is_pan(digits):
                    yield first, last, digits


def _run_starts(keys: list[str], items: bool) -> Iterator[int]:
    lo = 0
    while lo < len(keys):
        yield lo
        lo = _run_end(keys, lo, items)


def _card_layout(groups: list[str], i: int, phone: bool) -> Iterator[Hit]:
    """Numbers laid out as cards print them, whatever separators stand between the groups:
    4-4-4-4 and a short fifth group, 4-4-4 and a short fourth, 4-6-5, 4-6-4; the last group
    may carry a glued CVC or expiry ("dddd dddd dddd ddddccc", d a digit, c a CVC digit)."""
    sizes = [len(g) for g in groups[i : i + 5]]
    if sizes[1:3] == [4, 4] and len(sizes) >= 4:
        body = "".join(groups[i : i + 3])
        if sizes[3] == 4 and len(sizes) == 5:
            yield from _last_group(i, i + 4, body + groups[i + 3], groups[i + 4], 3, phone)
        yield from _last_group(i, i + 3, body, groups[i + 3], 4, phone)
    elif sizes[1:2] == [6] and len(sizes) >= 3:
        yield from _last_group(i, i + 2, groups[i] + groups[i + 1], groups[i + 2], 5, phone)


def _last_group(i: int, j: int, body: str, last: str, most: int, phone: bool) -> Iterator[Hit]:
    """``body`` and the first 1 to ``most`` digits of ``last``: the whole group, or part of it
    with at least ``_GLUE_MIN`` digits glued after."""
    for size in range(1, min(most, len(last)) + 1):
        rest = len(last) - size
        digits = body + last[:size]
        glued_or_whole = rest == 0 or rest >= _GLUE_MIN
        if glued_or_whole and not (phone and len(digits) <= 15) and is_pan(digits):
            yield i, j, digits
