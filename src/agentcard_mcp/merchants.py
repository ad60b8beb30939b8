"""Whether a merchant is on a blocklist: the one matcher, used by the server's guardrails
(``simulate_purchase``) and by the sandbox issuer's authorizations alike.

A blocked name must not get through by being spelled differently. Both names are reduced to
words the same way:

1. NFKC (fullwidth, ligature and other compatibility forms become plain letters);
2. invisible characters are removed and blank-looking ones read as spaces (``invisible``);
3. case folding, then the Unicode confusable skeleton (UTS #39, ``confusables``), so a Cyrillic
   ``\u0430`` is an ``a``; then accents and other combining marks are dropped (card networks send
   ASCII descriptors: "CAFE NERO" is Café Nero);
4. whatever is not a letter or a digit separates words (punctuation, spaces, trailing dots).

**The rule: a merchant is blocked when a run of its consecutive words, joined without
separators, equals a blocked name's words joined.** So blocking "bet365" blocks "BET 365",
"Bet-365 Casino" and "SQ *BET365."; blocking "Uber" blocks "UBER *TRIP" and "Uber Eats".
Words are never cut: blocking "bet" does not block "Alphabet", "Betty's" or "Better Bagels",
and "Shell" does not block "Shellfish Shack". A name glued to more letters ("UBERTRIP") is
another name.

A payment processor's prefix (``SQ *``, ``TST*``, ``PAYPAL *``, ``PP*``, ``SP *`` and
``SP ``, ``GOOGLE *``, ...; ``PROCESSOR_PREFIXES``) is dropped from a blocked name, so that
blocking "SQ *Joe's" blocks Joe's however it is paid. A merchant keeps its prefix: the rule
finds the name after it anyway, and blocking "PayPal" still blocks "PAYPAL *EBAY".

Case folding before the skeleton loses one look-alike: a capital ``I`` for an ``l``
("PayPaI"). So each name is also read with the skeleton taken first, then case folded except
for ``L`` (so "Lkea" is not "IKEA"); a merchant matching a blocked name in either reading is
blocked. In that second reading ``I``, ``l``, ``1`` and ``|`` are one letter.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from .confusables import skeleton

__all__ = ["PROCESSOR_PREFIXES", "blocked_by", "words"]

# The prefixes payment processors and platforms put before the merchant's own name in a card
# descriptor: Square, Toast, PayPal, Shopify, Google (Pay/Play), Zettle, SumUp, WePay,
# FastSpring, Paddle.
PROCESSOR_PREFIXES = (
    "SQ", "SQU", "TST", "PAYPAL", "PP", "SP", "GOOGLE", "IZ", "ZETTLE", "SUMUP", "WPY", "FS",
    "PADDLE.NET", "PADDLE",
)  # fmt: skip
_PREFIX = re.compile(
    # The prefix, then "*" (spaces around it optional) — or, for Shopify's "SP", a space.
    r"^\s*(?:(?:" + "|".join(re.escape(p) for p in PROCESSOR_PREFIXES) + r")\s*\*|SP\s)\s*",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]+")


Readings = tuple[tuple[str, ...], tuple[str, ...]]


def words(name: str) -> Readings:
    """``name`` as words, in the two readings the rule compares (case folded before the
    skeleton, and after it)."""
    text = unicodedata.normalize("NFKC", name)
    return _words(skeleton(text.casefold()).casefold()), _words(_fold_but_l(skeleton(text)))


@lru_cache(maxsize=1024)
def _blocked_words(entry: str) -> Readings:
    """A blocklist entry as words, its processor prefix dropped."""
    text = unicodedata.normalize("NFKC", entry)
    for _ in range(2):  # "PAYPAL *SQ *JOES": a platform over a processor
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text or not _WORD.search(stripped):
            break  # "SQ *" alone is a name, not a prefix
        text = stripped
    return words(text)


def _fold_but_l(shape: str) -> str:
    return "".join(ch if ch == "L" else ch.casefold() for ch in shape)


def _words(shape: str) -> tuple[str, ...]:
    bare = "".join(
        ch for ch in unicodedata.normalize("NFD", shape) if not unicodedata.combining(ch)
    )
    return tuple(_WORD.findall(bare))


def blocked_by(merchant: str, blocklist: Iterable[str]) -> str | None:
    """The entry of ``blocklist`` that blocks ``merchant`` (see the rule above), or None."""
    seen = words(merchant)
    for entry in blocklist:
        for merchant_words, blocked_words in zip(seen, _blocked_words(entry), strict=True):
            if blocked_words and _has_run(merchant_words, "".join(blocked_words)):
                return entry
    return None


def _has_run(tokens: tuple[str, ...], target: str) -> bool:
    """Whether consecutive ``tokens`` joined make exactly ``target``. Linear in the tokens
    for each start, and a start stops as soon as it stops being a prefix of ``target``."""
    for start in range(len(tokens)):
        joined = ""
        for token in tokens[start:]:
            joined += token
            if not target.startswith(joined):
                break
            if len(joined) == len(target):
                return True
    return False
