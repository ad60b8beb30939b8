"""The Unicode confusable skeleton (UTS #39 §4): two strings that look alike have one skeleton.

    skeleton(X) = NFD(each character of NFD(X) replaced by its prototype)

with default-ignorable characters removed first (here: every hidden character, and each
blank-looking one read as a space; see ``invisible``). The prototypes come from
Unicode's confusables.txt, whose source, version and checksum head ``data/confusables.txt``
(made by ``scripts/make_confusables.py``; to update, run it on the newer file). The table is
read once, on first use.

The skeleton is for comparing, never for showing: it is not meant to be readable (``m`` becomes
``rn``, ``0`` becomes ``O``, ``1`` and ``I`` become ``l``).
"""

from __future__ import annotations

import unicodedata
from functools import cache
from importlib.resources import files

from .invisible import blank, hidden

__all__ = ["prototypes", "skeleton"]


@cache
def prototypes() -> dict[str, str]:
    """Each confusable character's prototype (the table, parsed once)."""
    table: dict[str, str] = {}
    text = files("agentcard_mcp").joinpath("data", "confusables.txt").read_text("utf-8")
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        source, target = line.split("\t")
        table[chr(int(source, 16))] = "".join(chr(int(cp, 16)) for cp in target.split())
    return table


def skeleton(text: str) -> str:
    """The UTS #39 skeleton of ``text``."""
    table = prototypes()
    return unicodedata.normalize(
        "NFD", "".join(_prototype(ch, table) for ch in unicodedata.normalize("NFD", text))
    )


def _prototype(ch: str, table: dict[str, str]) -> str:
    if blank(ch):
        return " "
    if hidden(ch):
        return ""
    return table.get(ch, ch)
