"""The console's API keys page (DESIGN §13): every key with its prefix, name, scope, rate,
in-band approval, created, last used and revoked; a form to create one; revoke buttons.

A new key is on the page answering its creation and nowhere else: it is never stored (only its
digest is), never logged, and every response is ``Cache-Control: no-store``. It is the one
value not passed through redaction (which masks keys); everything else is, like every page.
Forms are POSTs carrying the session's CSRF token (checked before anything is read or done).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import AgentCardError
from ..keys import RATES, SCOPES, ApiKey
from . import pages

if TYPE_CHECKING:
    from ..operator import KeyDesk
    from .app import Desks

__all__ = ["keys_page", "routes"]

Handler = Callable[[Request], Awaitable[Response]]


def _row(key: ApiKey, csrf: str) -> str:
    revoke = pages._button("revoke", f"/keys/{key.id}/revoke", csrf, "Revoke") if key.active else ""
    return (
        f'<tr data-key-id="{escape(key.id)}"><td><code>{pages.shown(key.prefix)}…</code></td>'
        f"<td>{pages.shown(key.name)}</td><td>{pages.shown(key.scope)}</td>"
        f"<td>{key.rate}/min</td><td>{'allowed' if key.allow_in_band_approval else 'no'}</td>"
        f"<td>{pages.shown(key.created_at)}</td><td>{pages.shown(key.last_used_at or 'never')}</td>"
        f"<td>{pages.shown(key.revoked_at or '-')}</td>"
        f'<td class="actions">{revoke}</td></tr>'
    )


def _create_form(csrf: str) -> str:
    scopes = "".join(f'<option value="{s}">{s}</option>' for s in SCOPES)
    rates = "".join(
        f'<option value="{r}"{" selected" if r == 60 else ""}>{r}/min</option>' for r in RATES
    )
    return (
        '<h2>Create a key</h2><form method="post" action="/keys" class="create-key">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        '<label>name <input name="name" required maxlength="100"></label> '
        f'<label>scope <select name="scope">{scopes}</select></label> '
        f'<label>rate <select name="rate">{rates}</select></label> '
        '<label><input type="checkbox" name="allow_in_band_approval" value="1"> '
        "allow in-band approval</label> "
        '<button type="submit" data-action="create-key">Create</button></form>'
    )


def keys_page(
    keys: Sequence[ApiKey], pending: int, csrf: str, *, created: tuple[str, ApiKey] | None = None,
    error: str | None = None,
) -> str:  # fmt: skip
    notice = ""
    if created is not None:
        key, record = created
        # The key, this once: escaped but not redacted (redaction masks keys everywhere else).
        notice = (
            f'<section class="new-key" data-new-key-id="{escape(record.id)}"><h2>New key '
            f"{pages.shown(record.name)}</h2><p>This is the only time the key is shown: store it "
            "now. Send it as <code>Authorization: Bearer &lt;key&gt;</code>.</p>"
            f'<p><code class="key">{escape(key)}</code></p></section>'
        )
    if error is not None:
        notice = f'<p class="error">{pages.shown(error)}</p>'
    rows = "".join(_row(key, csrf) for key in keys) or ('<tr><td colspan="9">no keys yet</td></tr>')
    body = (
        f"<h1>API keys</h1>{notice}"
        "<table><thead><tr><th>prefix</th><th>name</th><th>scope</th><th>rate</th>"
        "<th>in-band approval</th><th>created (UTC)</th><th>last used</th><th>revoked</th>"
        f"<th></th></tr></thead><tbody>{rows}</tbody></table>{_create_form(csrf)}"
    )
    return pages._layout(f"({pending}) keys · agentcard console", body, "/keys", csrf)


def routes(
    desks: Callable[[], Desks],
    csrf_of: Callable[[Request], str],
    form_checked: Callable[[Request], Awaitable[Response | None]],
) -> list[Route]:
    """GET /keys, POST /keys (create), POST /keys/{key_id}/revoke."""

    def key_desk() -> KeyDesk:
        desk = desks().keys
        assert desk is not None, "the console was opened without a key store"
        return desk

    async def render(
        request: Request, status: int = 200, **extra: tuple[str, ApiKey] | str | None
    ) -> Response:
        keys = await key_desk().keys()
        pending = len(await desks().approvals.pending())
        page = keys_page(keys, pending, csrf_of(request), **extra)  # type: ignore[arg-type]
        return HTMLResponse(page, status)

    async def show(request: Request) -> Response:
        return await render(request)

    async def create(request: Request) -> Response:
        if (refused := await form_checked(request)) is not None:
            return refused
        form = parse_qs((await request.body()).decode("utf-8", "replace"))

        def field(name: str, default: str = "") -> str:
            return (form.get(name) or [default])[0]

        try:
            rate = int(field("rate", "60"))
        except ValueError:
            rate = 0  # refused by mint below, with the rates it may have
        try:
            created = await key_desk().create(
                field("name"),
                scope=field("scope", "cards:write"),
                rate=rate,
                allow_in_band_approval=field("allow_in_band_approval") in ("1", "on", "true"),
            )
        except AgentCardError as exc:
            return await render(request, 400, error=f"not created: {exc}")
        return await render(request, 201, created=created)

    async def revoke(request: Request) -> Response:
        if (refused := await form_checked(request)) is not None:
            return refused
        try:
            await key_desk().revoke(request.path_params["key_id"])
        except AgentCardError as exc:
            page = pages.message_page("could not revoke", str(exc), "/keys")
            return HTMLResponse(page, 409)
        return RedirectResponse("/keys", 303)

    return [
        Route("/keys", show, methods=["GET"]),
        Route("/keys", create, methods=["POST"]),
        Route("/keys/{key_id:str}/revoke", revoke, methods=["POST"]),
    ]
