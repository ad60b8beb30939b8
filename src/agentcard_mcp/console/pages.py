"""The console's pages as HTML text, rendered on the server from operator.py's data.

Everything shown goes through :func:`shown`: card details and secrets masked (DESIGN §6), then
control and format characters escaped (a right-to-left override in an agent's purpose must
not reorder the amounts the operator reads before approving), then HTML-escaped. Structures
(arguments, cards) are masked whole first, which catches a card number split over fields.

No inline script or style (the CSP is ``default-src 'self'``): behaviour is in
``static/console.js``. The hooks tests and people's scripts rely on are stable:
``data-approval-id`` (a pending approval only; a decided or expired one in the history is
``data-past-approval-id``), ``data-action`` and ``data-card-id``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from html import escape
from typing import Any

from ..approval_text import show
from ..models import Card
from ..operator import ApprovalView, BudgetView
from ..policy import usd
from ..redaction import redact, redact_text

__all__ = [
    "approvals_page", "cards_page", "message_page", "pending_list", "shown", "summary", "title_of",
]  # fmt: skip


def shown(value: object) -> str:
    """``value`` as page text: masked, control characters escaped, HTML-escaped."""
    text = redact_text(str(value))
    visible = "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch).startswith("C")
        else ch
        for ch in text
    )
    return escape(visible, quote=True)


def summary(text: str) -> str:
    """An approval's summary as page text: its first line (the amounts and why it is asked),
    then each argument on a line of its own (``approval_text``)."""
    return "<br>".join(shown(line.strip()) for line in text.split("\n"))


def title_of(pending: int) -> str:
    return f"({pending}) agentcard console"


def _layout(title: str, body: str, active: str, csrf: str = "") -> str:
    links = "".join(
        f'<a href="{href}"{" aria-current=page" if href == active else ""}>{name}</a> '
        for href, name in (
            ("/", "Approvals"),
            ("/cards", "Cards"),
            ("/audit", "Audit"),
            ("/budget", "Budget"),
            ("/keys", "Keys"),
        )
    )
    # For people's own scripts: the session's CSRF token, which every form carries too.
    meta = f'<meta name="csrf" content="{escape(csrf)}">' if csrf else ""
    return (
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>{meta}'
        '<link rel="stylesheet" href="/static/console.css">'
        '<script src="/static/console.js" defer></script></head>'
        f"<body><header><strong>agentcard console</strong> <nav>{links}</nav></header>"
        f"<main>{body}</main></body></html>\n"
    )


def _button(action: str, path: str, csrf: str, label: str) -> str:
    return (
        f'<form method="post" action="{escape(path)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<button type="submit" data-action="{action}">{label}</button></form>'
    )


def _arguments(arguments: dict[str, Any]) -> str:
    masked = redact(arguments)
    rows = "".join(
        # Whole (not cut), but quoted and escaped as in the approval text: a blank-looking or
        # invisible character in the agent's text is shown as its escape.
        f"<li><code>{shown(key)}</code> = <code>{shown(show(value, limit=None))}</code></li>"
        for key, value in masked.items()
    )
    return f'<ul class="arguments">{rows}</ul>'


def _pending_item(view: ApprovalView, csrf: str) -> str:
    from .context import asked_by, change  # context renders with this module's shown()

    approval = view.approval
    path = f"/approvals/{approval.id}"
    return (
        f'<li class="approval" id="{escape(approval.id)}" data-approval-id="{escape(approval.id)}">'
        f"<p><strong>{shown(approval.tool)}</strong> "
        f'<span class="summary">{summary(approval.summary)}</span></p>'
        f"{_arguments(approval.arguments)}{asked_by(view)}{change(view)}"
        f'<p>time left <span data-seconds-left="{view.seconds_left}">{view.time_left}</span></p>'
        f"{_button('approve', path + '/approve', csrf, 'Approve')}"
        f"{_button('deny', path + '/deny', csrf, 'Deny')}</li>"
    )


def pending_list(pending: Sequence[ApprovalView], csrf: str) -> str:
    """The inner HTML of the pending list (also what the live updates send)."""
    if not pending:
        return '<li class="empty">no pending approvals</li>'
    return "".join(_pending_item(view, csrf) for view in pending)


def approvals_page(
    pending: Sequence[ApprovalView], history: Sequence[ApprovalView], csrf: str
) -> str:
    past = "".join(
        f'<tr data-past-approval-id="{escape(v.approval.id)}"><td>{shown(v.approval.status)}</td>'
        f"<td>{shown(v.approval.tool)}</td><td>{summary(v.approval.summary)}</td>"
        f"<td>{shown(v.asked_by or '')}</td>"
        f"<td>{shown(v.approval.created_at.isoformat(timespec='seconds'))}</td></tr>"
        for v in history
    )
    body = (
        "<h1>Pending approvals</h1>"
        f'<ul id="pending">{pending_list(pending, csrf)}</ul>'
        "<h2>History</h2><table><thead><tr><th>status</th><th>tool</th><th>request</th>"
        f"<th>asked by</th><th>asked at (UTC)</th></tr></thead><tbody>{past}</tbody></table>"
    )
    return _layout(title_of(len(pending)), body, "/", csrf)


def _card_row(card: Card, csrf: str) -> str:
    data = redact(card.model_dump(mode="json"))
    path = f"/cards/{card.id}"
    buttons = []
    if card.status in ("active", "pending"):
        buttons.append(_button("freeze", path + "/freeze", csrf, "Freeze"))
    if card.status == "frozen":
        buttons.append(_button("unfreeze", path + "/unfreeze", csrf, "Unfreeze"))
    if card.status != "closed":
        buttons.append(_button("close", path + "/close", csrf, "Close"))
    categories = ", ".join(str(c) for c in data["mcc_allowlist"]) or "any"
    return (
        f'<tr data-card-id="{escape(card.id)}"><td><code>{shown(data["id"])}</code> '
        f'<a href="{escape(path)}/ledger" data-action="ledger">ledger</a></td>'
        f"<td>{shown(data.get('purpose') or '')}</td><td>{shown(data['status'])}</td>"
        f"<td>{shown(usd(card.daily_limit_cents))}</td>"
        f"<td>{shown(usd(card.per_auth_max_cents))}</td><td>{shown(categories)}</td>"
        f"<td>{shown(usd(card.current_daily_spend_cents))}</td>"
        f'<td class="actions">{"".join(buttons)}</td></tr>'
    )


def cards_page(cards: Sequence[Card], budget: BudgetView, pending: int, csrf: str) -> str:
    rows = "".join(_card_row(card, csrf) for card in cards)
    body = (
        f'<h1>Cards</h1><p class="budget" data-committed-cents="{budget.committed_cents}" '
        f'data-max-total-daily-cents="{budget.max_total_daily_cents}">'
        f"Today ({shown(budget.day)} UTC): {shown(usd(budget.committed_cents))} committed of "
        f"{shown(usd(budget.max_total_daily_cents))} (spent {shown(usd(budget.spent_cents))}; "
        f"{budget.active_cards} of {budget.max_active_cards} cards active)"
        f'<meter min="0" max="{budget.max_total_daily_cents}" '
        f'value="{budget.committed_cents}"></meter></p>'
        "<table><thead><tr><th>card</th><th>purpose</th><th>status</th><th>daily limit</th>"
        "<th>per purchase</th><th>categories</th><th>spent today</th><th></th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    return _layout(f"({pending}) cards · agentcard console", body, "/cards", csrf)


def message_page(title: str, message: str, back: str) -> str:
    body = f'<h1>{escape(title)}</h1><p class="error">{shown(message)}</p><a href="{back}">back</a>'
    return _layout(f"{title} · agentcard console", body, back)
