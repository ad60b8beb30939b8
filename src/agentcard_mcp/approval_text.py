"""The approval text: what the human reads before approving an action (the in-band form, the
console page sent by URL, the operator console, ``approvals list``, the webhook, the errors).

The arguments are the agent's own text, so the layout is fixed and the agent's text cannot
reshape it::

    create_card: daily_limit_cents=5000 ($50.00) — daily limit $50.00 is above the approv…
      purpose = "flights to Lisbon"
      mcc_allowlist = ["travel", "4511"]

- The first line is ours alone: the tool, every amount (``*_cents``) and why approval is asked
  (which ceiling or threshold). No argument text reaches it.
- Each other argument has a line of its own, ``name = value``. Every string is quoted, with
  control, format, invisible and blank-looking characters, quotes and backslashes shown as
  escapes (``\\u200b``, ``\\"``; see ``invisible``), so a purpose can neither break the line,
  fake an argument list, nor push the amount off screen behind blank characters; a long one is
  cut with its length shown (``"aaaa…" (312 chars)``), a long list with its count.
- Card numbers and secrets are masked first (DESIGN §6), then escaped, then cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .guardrails import Verdict
from .invisible import escape
from .policy import usd
from .redaction import redact_text

__all__ = ["MAX_ITEMS", "MAX_SHOWN", "show", "summarize"]

# How much of one string is shown (escapes included), and how many items of a list.
MAX_SHOWN = 80
MAX_ITEMS = 10
# Not shown: how the call is made, not what it does.
_UNSHOWN = frozenset({"approval_id", "idempotency_key"})


def summarize(tool: str, arguments: Mapping[str, Any], verdict: Verdict) -> str:
    """The action as the human will see it (see the module docstring)."""
    given = {k: v for k, v in arguments.items() if k not in _UNSHOWN and not _omitted(v)}
    amounts = {k: v for k, v in given.items() if _is_amount(k, v)}
    lines = [_first_line(tool, amounts, verdict)]
    lines += [f"  {k} = {show(v)}" for k, v in given.items() if k not in amounts]
    return "\n".join(lines)


def show(value: Any, limit: int | None = MAX_SHOWN) -> str:
    """One argument's value as the approval text shows it: JSON-like, every string quoted and
    escaped, and (unless ``limit`` is None) cut to ``limit`` characters with its length."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return _show_list(list(value), limit)
    return _show_text(str(value), limit)


def _show_text(text: str, limit: int | None) -> str:
    shown = escape(redact_text(text))
    if limit is None or len(shown) <= limit:
        return f'"{shown}"'
    cut = shown[:limit]
    # Never end inside an escape: "\u20" would read as something else.
    slash = cut.rfind("\\", max(0, limit - 10))
    if slash != -1 and not _whole_escape(shown, slash, limit):
        cut = cut[:slash]
    return f'"{cut}…" ({len(text)} chars)'


def _whole_escape(shown: str, start: int, end: int) -> bool:
    """Whether the escape at ``start`` ends before ``end``."""
    kind = shown[start + 1 : start + 2]
    size = {"u": 6, "U": 10}.get(kind, 2)
    return start + size <= end


def _show_list(items: list[Any], limit: int | None) -> str:
    shown = [show(item, limit) for item in items[:MAX_ITEMS]]
    if len(items) > MAX_ITEMS:
        return "[" + ", ".join(shown) + f", …] ({len(items)} items)"
    return "[" + ", ".join(shown) + "]"


def _first_line(tool: str, amounts: Mapping[str, int], verdict: Verdict) -> str:
    money = ", ".join(f"{k}={v} ({usd(v)})" for k, v in amounts.items())
    why = "; ".join(verdict.reasons)
    line = tool + (f": {money}" if money else "") + (f" — {why}" if why else "")
    # Ours alone (tool names, integers, the policy's reasons), masked all the same.
    return escape(redact_text(line), quotes=False)


def _is_amount(name: str, value: Any) -> bool:
    return name.endswith("_cents") and isinstance(value, int) and not isinstance(value, bool)


def _omitted(value: Any) -> bool:
    # Defaults the agent did not set; [] stays (it means "any category").
    return value is None or value is False or (isinstance(value, str) and not value)
