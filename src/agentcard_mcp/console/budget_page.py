"""The console's budget page (DESIGN §13): today's commitment against ``max_total_daily_cents``
as a gauge, and approved spend per UTC day (the last 14) and per category, drawn by the server
as inline SVG (no script, no library, no CDN: the CSP is ``default-src 'self'``, and SVG
presentation attributes are not styles). The figures come from operator.py (``CardDesk.budget``
is ``get_limits``; ``CardDesk.spend`` reads the issuer's counters, bounded by the window).

Hooks: the gauge carries ``data-committed-cents`` and ``data-max-total-daily-cents``; each
day's bar ``data-day`` and ``data-cents``; each category's bar ``data-category``.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..operator import BudgetView, SpendView
from ..policy import usd
from . import pages

if TYPE_CHECKING:
    from .app import Desks

__all__ = ["budget_page", "routes"]

_W, _H = 640, 200  # the day chart's drawing area
_SVG = 'xmlns="http://www.w3.org/2000/svg" role="img"'


def _gauge(budget: BudgetView) -> str:
    ceiling = max(budget.max_total_daily_cents, 1)
    share = min(budget.committed_cents / ceiling, 1.0)
    spent = min(budget.spent_cents / ceiling, 1.0)
    fill = "#b00" if share >= 0.9 else "#c80" if share >= 0.7 else "#2a7"
    label = (
        f"{usd(budget.committed_cents)} committed of {usd(budget.max_total_daily_cents)} "
        f"({share:.0%}); spent {usd(budget.spent_cents)}"
    )
    return (
        f'<figure class="gauge" data-committed-cents="{budget.committed_cents}" '
        f'data-max-total-daily-cents="{budget.max_total_daily_cents}" '
        f'data-spent-cents="{budget.spent_cents}">'
        f'<svg {_SVG} viewBox="0 0 {_W} 36" width="{_W}" height="36" aria-label="{escape(label)}">'
        f'<rect x="0" y="4" width="{_W}" height="28" rx="4" fill="#e6e6e6"/>'
        f'<rect x="0" y="4" width="{share * _W:.1f}" height="28" rx="4" fill="{fill}"/>'
        f'<rect x="0" y="14" width="{spent * _W:.1f}" height="8" fill="#134" opacity="0.6"/>'
        "</svg>"
        f"<figcaption>Today ({pages.shown(budget.day)} UTC): {pages.shown(label)}; "
        f"{usd(budget.remaining_cents)} left; {budget.active_cards} of "
        f"{budget.max_active_cards} cards active</figcaption></figure>"
    )


def _days(spend: SpendView) -> str:
    top = max((cents for _, cents in spend.days), default=0) or 1
    step = _W / max(len(spend.days), 1)
    bars = []
    for i, (day, cents) in enumerate(spend.days):
        height = cents / top * (_H - 20)
        x = i * step + 2
        bars.append(
            f'<g data-day="{escape(day)}" data-cents="{cents}">'
            f"<title>{escape(day)}: {usd(cents)}</title>"
            + (
                f'<rect class="bar" x="{x:.1f}" y="{_H - 16 - height:.1f}" '
                f'width="{step - 4:.1f}" height="{height:.1f}" fill="#37a"/>'
                if cents
                else ""
            )
            + f'<text x="{x + (step - 4) / 2:.1f}" y="{_H - 2}" font-size="10" '
            f'text-anchor="middle">{escape(day[5:])}</text></g>'
        )
    label = f"approved spend per day, last {len(spend.days)} days: {usd(spend.total_cents)}"
    return (
        f'<figure class="chart days"><svg {_SVG} viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" aria-label="{escape(label)}">{"".join(bars)}</svg>'
        f"<figcaption>{escape(label)} (peak day {usd(top if spend.total_cents else 0)})"
        "</figcaption></figure>"
    )


def _categories(spend: SpendView) -> str:
    if not spend.categories:
        return '<p class="empty">no approved spend in these days</p>'
    top = spend.categories[0][1] or 1
    row_h = 22
    height = row_h * len(spend.categories)
    rows = []
    for i, (category, cents) in enumerate(spend.categories):
        y = i * row_h
        width = cents / top * (_W - 260)
        rows.append(
            f'<g data-category="{pages.shown(category)}" data-cents="{cents}">'
            f'<text x="0" y="{y + 15}" font-size="12">{pages.shown(category)}</text>'
            f'<rect class="bar" x="150" y="{y + 3}" width="{width:.1f}" height="{row_h - 6}" '
            f'fill="#7a3"/><text x="{154 + width:.1f}" y="{y + 15}" font-size="12">'
            f"{usd(cents)}</text></g>"
        )
    return (
        f'<figure class="chart categories"><svg {_SVG} viewBox="0 0 {_W} {height}" '
        f'width="{_W}" height="{height}" aria-label="approved spend per category">'
        f"{''.join(rows)}</svg><figcaption>per category, same days</figcaption></figure>"
    )


def budget_page(budget: BudgetView, spend: SpendView, pending: int, csrf: str) -> str:
    partial = (
        ""
        if spend.complete
        else '<p class="error">the issuer has no spend counters and its ledger for these days '
        "is longer than the console reads: the chart shows the most recent part</p>"
    )
    body = (
        f"<h1>Budget</h1>{_gauge(budget)}"
        f"<h2>Approved spend, last {len(spend.days)} days (UTC)</h2>{partial}"
        f"{_days(spend)}<h2>Per category</h2>{_categories(spend)}"
    )
    return pages._layout(f"({pending}) budget · agentcard console", body, "/budget", csrf)


def routes(desks: Callable[[], Desks], csrf_of: Callable[[Request], str]) -> list[Route]:
    """GET /budget."""

    async def show(request: Request) -> Response:
        desk = desks()
        budget, spend = await desk.cards.budget(), await desk.cards.spend()
        pending = len(await desk.approvals.pending())
        return HTMLResponse(budget_page(budget, spend, pending, csrf_of(request)))

    return [Route("/budget", show, methods=["GET"])]
