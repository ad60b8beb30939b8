"""The console's audit log (DESIGN §13): the last records of the trail (``AuditSink.tail``),
newest first, filtered by tool, outcome and caller (query parameters of a small GET form). A
caller that is an HTTP key is shown by the key's name, with its id. Everything — arguments
included, already scrubbed when written — passes through redaction again and is escaped."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..operator import AuditView
from ..redaction import redact
from . import pages

if TYPE_CHECKING:
    from .app import Desks

__all__ = ["FILTERS", "audit_page", "routes"]

FILTERS = ("tool", "outcome", "caller")
_MAX_FILTER = 200


def _select(name: str, values: Sequence[str], chosen: str, names: dict[str, str]) -> str:
    options = [f'<option value=""{"" if chosen else " selected"}>any</option>']
    for value in sorted({*values, *([chosen] if chosen else [])}):
        label = names.get(value, value)
        label = value if label == value else f"{label} ({value})"
        selected = " selected" if value == chosen else ""
        options.append(
            f'<option value="{pages.shown(value)}"{selected}>{pages.shown(label)}</option>'
        )
    return f'<label>{name} <select name="{name}">{"".join(options)}</select></label> '


def _row(record: dict[str, Any], names: dict[str, str]) -> str:
    caller = str(record.get("caller", ""))
    who = names.get(caller, caller)
    who = who if who == caller else f"{who} ({caller})"
    arguments = json.dumps(redact(record.get("arguments") or {}), ensure_ascii=False)
    return (
        f'<tr data-tool="{pages.shown(record.get("tool", ""))}" '
        f'data-outcome="{pages.shown(record.get("outcome", ""))}">'
        f"<td>{pages.shown(record.get('time', ''))}</td>"
        f"<td>{pages.shown(record.get('tool', ''))}</td>"
        f'<td class="caller">{pages.shown(who)}</td>'
        f'<td class="outcome">{pages.shown(record.get("outcome", ""))}</td>'
        f"<td>{pages.shown(record.get('card_id') or '')}</td>"
        f"<td>{pages.shown(record.get('approval_id') or '')}</td>"
        f"<td><code>{pages.shown(arguments)}</code></td></tr>"
    )


def audit_page(
    view: AuditView, chosen: dict[str, str], names: dict[str, str], pending: int, csrf: str
) -> str:
    choices = {"tool": view.tools, "outcome": view.outcomes, "caller": view.callers}
    form = (
        '<form method="get" action="/audit" class="filters">'
        + "".join(_select(f, choices[f], chosen.get(f, ""), names) for f in FILTERS)
        + '<button type="submit">Filter</button> <a href="/audit">clear</a></form>'
    )
    rows = "".join(_row(record, names) for record in view.records) or (
        '<tr><td colspan="7" class="empty">no audit records</td></tr>'
    )
    skipped = (
        f'<p class="error">{view.skipped} unreadable line(s) passed over</p>'
        if view.skipped
        else ""
    )
    body = (
        f"<h1>Audit log</h1>{form}{skipped}"
        "<table><thead><tr><th>time (UTC)</th><th>tool</th><th>caller</th><th>outcome</th>"
        "<th>card</th><th>approval</th><th>arguments</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    return pages._layout(f"({pending}) audit · agentcard console", body, "/audit", csrf)


def routes(desks: Callable[[], Desks], csrf_of: Callable[[Request], str]) -> list[Route]:
    """GET /audit[?tool=…&outcome=…&caller=…]."""

    async def show(request: Request) -> Response:
        chosen = {f: request.query_params.get(f, "")[:_MAX_FILTER] for f in FILTERS}
        view = await desks().cards.audit_log(
            tool=chosen["tool"] or None,
            outcome=chosen["outcome"] or None,
            caller=chosen["caller"] or None,
        )
        names = {c: await desks().approvals.who(c) for c in {*view.callers, chosen["caller"]} if c}
        pending = len(await desks().approvals.pending())
        page = audit_page(view, chosen, names, pending, csrf_of(request))
        return HTMLResponse(page)

    return [Route("/audit", show, methods=["GET"])]
