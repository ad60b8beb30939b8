"""Characters a reader cannot see, in one place: what the merchant matcher drops and what the
approval text shows as an escape.

Hidden are Unicode's Default_Ignorable_Code_Point characters (zero-width spaces and joiners,
bidi controls, variation selectors, the combining grapheme joiner, the Hangul fillers, tags;
the ranges below are DerivedCoreProperties.txt 17.0.0's), every other control, format,
surrogate, private-use or unassigned code point (categories Cc, Cf, Cs, Co, Cn), and what
renders as blank: any space but U+0020 (Zs), line and paragraph separators (Zl, Zp), and
U+2800 BRAILLE PATTERN BLANK. Enclosing marks (Me) draw over their neighbours and are hidden
too. ``blank`` tells the blank-looking ones apart: a matcher reads them as a space, not as
nothing.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right

__all__ = ["FILLERS", "blank", "escape", "hidden", "ignorable_class"]

# Default_Ignorable_Code_Point (DerivedCoreProperties-17.0.0.txt), as inclusive ranges.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)  # fmt: skip
_STARTS = [start for start, _ in _DEFAULT_IGNORABLE]
# Drawn as nothing, standing in for a space (some are default-ignorable too, U+2800 is not).
_BLANK = frozenset({"\u2800", "\u115f", "\u1160", "\u3164", "\uffa0"})
FILLERS = _BLANK
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Me"})
# After this many combining marks on one letter, the rest are escaped: a stack of them draws
# over the lines above and below.
_MAX_MARKS = 2


def _default_ignorable(cp: int) -> bool:
    i = bisect_right(_STARTS, cp) - 1
    return i >= 0 and cp <= _DEFAULT_IGNORABLE[i][1]


def ignorable_class(*, astral: bool) -> str:
    """A regular expression's character class of the Default_Ignorable code points in the
    Basic Multilingual Plane, or (``astral``) beyond it."""
    ranges = "".join(
        chr(start) if start == end else f"{chr(start)}-{chr(end)}"
        for start, end in _DEFAULT_IGNORABLE
        if (start > 0xFFFF) == astral
    )
    return f"[{ranges}]"


def blank(ch: str) -> bool:
    """Whether ``ch`` looks like a space (or a line break) without being U+0020."""
    return ch != " " and (ch.isspace() or ch in _BLANK or unicodedata.category(ch) == "Zs")


def hidden(ch: str) -> bool:
    """Whether ``ch`` cannot be seen for what it is (see the module docstring)."""
    if ch == " ":
        return False
    if " " <= ch <= "~":
        return False  # printable ASCII: the common case, decided without a lookup
    return (
        blank(ch) or _default_ignorable(ord(ch)) or unicodedata.category(ch) in _HIDDEN_CATEGORIES
    )


def _code(ch: str) -> str:
    cp = ord(ch)
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


def escape(text: str, *, quotes: bool = True) -> str:
    """``text`` with every hidden character, every combining mark past the second on one
    letter, and (with ``quotes``) the backslash and double quote shown as escapes
    (``\\u200b``, ``\\\\``, ``\\"``), so it can be shown between double quotes and read for
    exactly what it is."""
    out: list[str] = []
    marks = 0
    for ch in text:
        if quotes and ch in ('"', "\\"):
            out.append("\\" + ch)
            marks = 0
        elif hidden(ch):
            out.append(_code(ch))
        elif unicodedata.combining(ch) or unicodedata.category(ch) == "Mn":
            marks += 1
            out.append(ch if marks <= _MAX_MARKS else _code(ch))
        else:
            out.append(ch)
            marks = 0
    return "".join(out)
