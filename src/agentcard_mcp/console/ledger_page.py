"""The console's ledger of one card (DESIGN §13): each authorization with its decision, the
decline reason, amount, merchant, category and time, newest first as the issuer pages it, with a
link to the next page (the issuer's ``next_cursor``). Everything passes through redaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..errors import AgentCardError
from ..models import LedgerEntry, LedgerPage
from ..policy import usd
from . import pages

if TYPE_CHECKING:
    from .app import Desks

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "ledger_page", "routes"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_MAX_CURSOR = 512  # a cursor longer than any the issuer hands out is not passed on


def _row(entry: LedgerEntry) -> str:
    reason = (
        "" if entry.decision == "approve" and entry.reason in ("", "approved") else entry.reason
    )
    return (
        f'<tr data-entry-id="{escape(entry.id, quote=True)}" '
        f'data-decision="{escape(entry.decision, quote=True)}">'
        f"<td>{pages.shown(entry.decided_at)}</td><td>{pages.shown(entry.decision)}</td>"
        f'<td class="reason">{pages.shown(reason)}</td>'
        f'<td class="amount">{pages.shown(usd(entry.amount_cents))}</td>'
        f"<td>{pages.shown(entry.merchant)}</td><td>{pages.shown(entry.mcc)}</td></tr>"
    )


def ledger_page(card_id: str, page: LedgerPage, limit: int, pending: int, csrf: str) -> str:
    rows = "".join(_row(entry) for entry in page.entries) or (
        '<tr><td colspan="6" class="empty">no authorizations</td></tr>'
    )
    more = ""
    if page.has_more and page.next_cursor:
        query = urlencode({"cursor": page.next_cursor, "limit": limit})
        href = f"/cards/{quote(card_id, safe='')}/ledger?{query}"
        link = escape(href, quote=True)
        more = f'<p><a href="{link}" data-action="next" rel="next">next page</a></p>'
    totals = page.totals
    body = (
        f'<h1>Ledger of <code data-card-id="{escape(card_id, quote=True)}">'
        f"{pages.shown(card_id)}</code></h1>"
        f'<p class="totals">this page: {totals.approved_count} approved '
        f"({pages.shown(usd(totals.approved_cents))}), {totals.declined_count} declined</p>"
        "<table><thead><tr><th>time (UTC)</th><th>decision</th><th>reason</th><th>amount</th>"
        f"<th>merchant</th><th>category</th></tr></thead><tbody>{rows}</tbody></table>"
        f'{more}<p><a href="/cards">back to the cards</a></p>'
    )
    return pages._layout(f"({pending}) ledger · agentcard console", body, "/cards", csrf)


def _limit(text: str | None) -> int:
    try:
        value = int(text) if text else DEFAULT_LIMIT
    except ValueError:
        return DEFAULT_LIMIT
    return min(max(value, 1), MAX_LIMIT)


def routes(desks: Callable[[], Desks], csrf_of: Callable[[Request], str]) -> list[Route]:
    """GET /cards/{card_id}/ledger[?cursor=…&limit=…]."""

    async def show(request: Request) -> Response:
        card_id = request.path_params["card_id"]
        limit = _limit(request.query_params.get("limit"))
        cursor = request.query_params.get("cursor") or None
        if cursor is not None and len(cursor) > _MAX_CURSOR:
            cursor = None
        try:
            page = await desks().cards.ledger(card_id, cursor=cursor, limit=limit)
        except AgentCardError as exc:
            status = 404 if exc.code == "not_found" else 409
            return HTMLResponse(pages.message_page("no ledger", str(exc), "/cards"), status)
        pending = len(await desks().approvals.pending())
        return HTMLResponse(ledger_page(card_id, page, limit, pending, csrf_of(request)))

    handler: Callable[[Request], Awaitable[Response]] = show
    return [Route("/cards/{card_id:str}/ledger", handler, methods=["GET"])]
