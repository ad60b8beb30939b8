"""What the approvals page shows around each pending request beyond its arguments: the card's
state before → after the approved call, read through the issuer the console has open (who asked
comes with the view from ``ApprovalDesk``, which looks the key's name up)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from html import escape

from ..operator import ApprovalView, CardChange, CardDesk, CardState
from ..policy import usd
from . import pages

__all__ = ["asked_by", "change", "in_context"]


async def in_context(cards: CardDesk, views: Sequence[ApprovalView]) -> list[ApprovalView]:
    """The views with the card's state before → after filled in (one issuer read per card)."""
    return [replace(view, change=await cards.change_of(view.approval)) for view in views]


def asked_by(view: ApprovalView) -> str:
    """ "asked by NAME" (the HTTP key's name, or stdio), or nothing when not recorded."""
    if view.asked_by is None:
        return ""
    return f'<p class="asked-by">asked by <strong>{pages.shown(view.asked_by)}</strong></p>'


def _cells(state: CardState | None) -> list[str]:
    if state is None:
        return ["", "", "", ""]
    categories = ", ".join(state.categories) or "any"
    return [
        state.status,
        usd(state.daily_limit_cents),
        usd(state.per_auth_max_cents),
        categories,
    ]


def change(view: ApprovalView) -> str:
    """The card before → after as a small table (the new card's limits for create_card); a
    changed value is marked ``class="changed"``."""
    diff: CardChange | None = view.change
    if diff is None:
        return ""
    if diff.missing is not None:
        return (
            f'<p class="card-state">card <code>{pages.shown(diff.card_id or "")}</code>: '
            f"not shown by the issuer ({pages.shown(diff.missing)})</p>"
        )
    labels = ["status", "daily limit", "per purchase", "categories"]
    before, after = _cells(diff.before), _cells(diff.after)
    if diff.before is None:
        rows = "".join(
            f"<tr><th>{label}</th><td>{pages.shown(new)}</td></tr>"
            for label, new in zip(labels, after, strict=True)
        )
        return f'<table class="card-state"><caption>the new card</caption>{rows}</table>'
    rows = "".join(
        f"<tr{' class=changed' if old != new else ''}><th>{label}</th>"
        f"<td>{pages.shown(old)}</td><td>→</td><td>{pages.shown(new)}</td></tr>"
        for label, old, new in zip(labels, before, after, strict=True)
    )
    card = escape(diff.card_id or "", quote=True)
    return (
        f'<table class="card-state" data-card-id="{card}"><caption>card '
        f"<code>{pages.shown(diff.card_id or '')}</code> before → after</caption>{rows}</table>"
    )
