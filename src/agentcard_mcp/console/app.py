"""The operator's web console (DESIGN §13): its own Starlette app on 127.0.0.1, never mounted in
the agent's HTTP app. It reads and writes through operator.py, like the CLI.

Security, in the order a request meets it (``_Guard``):

1. ``Host`` must be ``127.0.0.1:PORT`` or ``localhost:PORT`` — else 421 (DNS rebinding).
2. Every page but ``/login`` needs the session cookie — else 401. ``/login?token=`` takes the
   one-time token printed on the console's stdout, once, and sets an HttpOnly, SameSite=Strict
   cookie naming a random session kept in memory here.
3. A POST (every state change is one) must carry the console's own ``Origin`` — else 403 — and
   the session's CSRF token in the form (checked by the handler) — else 403.
4. Every response carries ``Content-Security-Policy: default-src 'self'`` and
   ``X-Frame-Options: DENY``; pages have no inline script or style.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from importlib.resources import files
from urllib.parse import parse_qs

import anyio
import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..budget import Budget
from ..errors import AgentCardError
from ..issuers.connect import open_issuer
from ..operator import ApprovalDesk, CardDesk, KeyDesk
from ..policy import load_policy
from ..service import CardService
from ..settings import Settings
from ..storage import open_storage
from . import audit_page, budget_page, keys_page, ledger_page, pages
from .context import in_context

__all__ = ["COOKIE", "Desks", "OpenDesks", "create_console_app", "open_desks"]

COOKIE = "agentcard_console"
# How often the live view reads the pending approvals (server side, per open page).
POLL_S = 0.5
_HEARTBEAT_S = 15.0
_APPROVAL_ID = "{approval_id:str}"
_STATIC = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
_HEADERS = [
    (b"content-security-policy", b"default-src 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" with the
    # console's own form posts, and the Origin check refuses them (403).
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


@dataclass(frozen=True, slots=True)
class Desks:
    approvals: ApprovalDesk
    cards: CardDesk
    keys: KeyDesk | None = None


OpenDesks = Callable[[], AbstractAsyncContextManager[Desks]]


@asynccontextmanager
async def open_desks(
    settings: Settings, issuer_transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[Desks]:
    """The same storage and issuer the server uses, opened for as long as the console runs."""
    policy = load_policy(settings.policy_file, settings.home).policy
    service = CardService(policy)
    async with open_storage(settings) as storage, open_issuer(settings, issuer_transport) as issuer:
        budget = Budget(storage.budget)
        await budget.sync(issuer)
        service.bind(issuer, budget, storage.approvals)
        try:
            yield Desks(
                ApprovalDesk(storage.approvals, keys=storage.keys),
                CardDesk(service, storage.audit),
                KeyDesk(storage.keys),
            )
        finally:
            service.bind(None)


@dataclass
class _Sessions:
    """The one-time login token (None once used) and session id -> CSRF token."""

    login_token: str | None
    csrf: dict[str, str] = field(default_factory=dict)

    def login(self, token: str) -> str | None:
        """A new session id for the right token, once."""
        expected = self.login_token
        if expected is None or not secrets.compare_digest(token.encode(), expected.encode()):
            return None
        self.login_token = None
        session = secrets.token_urlsafe(32)
        self.csrf[session] = secrets.token_urlsafe(32)
        return session

    def of(self, scope: Scope) -> str | None:
        """The CSRF token of the request's session, or None without a valid session cookie."""
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                cookie: SimpleCookie = SimpleCookie()
                cookie.load(value.decode("latin-1"))
                if COOKIE in cookie and cookie[COOKIE].value in self.csrf:
                    return self.csrf[cookie[COOKIE].value]
        return None


class _Guard:
    """Host, session and Origin checks, and the security headers on every response."""

    def __init__(self, app: ASGIApp, port: int, sessions: _Sessions) -> None:
        self.app = app
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self.origins = {f"http://{host}" for host in self.hosts}
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_HEADERS]
            await send(message)

        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal: Response | None = None
        if headers.get("host") not in self.hosts:
            refusal = PlainTextResponse("misdirected request: unknown Host", 421)
        elif scope["path"] != "/login" and self.sessions.of(scope) is None:
            refusal = PlainTextResponse(
                "not logged in: open the login URL agentcard-mcp console printed", 401
            )
        elif scope["method"] == "POST" and headers.get("origin") not in self.origins:
            refusal = PlainTextResponse("forbidden: the request did not come from the console", 403)
        if refusal is not None:
            await refusal(scope, receive, secured)
            return
        await self.app(scope, receive, secured)


def create_console_app(open_: OpenDesks, *, port: int, login_token: str) -> Starlette:
    """The console for 127.0.0.1:``port``; ``open_`` opens its storage and issuer (``partial(
    open_desks, settings)``); ``login_token`` is the one-time token of the printed login URL."""
    sessions = _Sessions(login_token)
    desks: list[Desks] = []

    def desk() -> Desks:
        return desks[0]

    def csrf_of(request: Request) -> str:
        token = sessions.of(request.scope)
        assert token is not None  # _Guard let only sessions through
        return token

    async def form_checked(request: Request) -> Response | None:
        """403 unless the form carries the session's CSRF token."""
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        sent = (form.get("csrf") or [""])[0]
        if not secrets.compare_digest(sent.encode(), csrf_of(request).encode()):
            return PlainTextResponse("forbidden: missing or wrong CSRF token", 403)
        return None

    async def login(request: Request) -> Response:
        session = sessions.login(request.query_params.get("token", ""))
        if session is None:
            return PlainTextResponse(
                "this login link is not valid (each one works once): restart "
                "`agentcard-mcp console` for a new one",
                403,
            )
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict", path="/")
        return response

    async def approvals_page(request: Request) -> Response:
        pending = await in_context(desk().cards, await desk().approvals.pending())
        history = await desk().approvals.history()
        return HTMLResponse(pages.approvals_page(pending, history, csrf_of(request)))

    def decide(verb: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            if (refused := await form_checked(request)) is not None:
                return refused
            approval_id = request.path_params["approval_id"]
            action = desk().approvals.approve if verb == "approve" else desk().approvals.deny
            try:
                await action(approval_id)
            except AgentCardError as exc:
                return HTMLResponse(pages.message_page(f"not {verb}d", str(exc), "/"), 409)
            return RedirectResponse("/", 303)

        return handler

    async def approval_link(request: Request) -> Response:
        # Where a notice's console_url leads: the approvals page, at that request.
        return RedirectResponse(f"/#{request.path_params['approval_id']}", 303)

    async def cards_page(request: Request) -> Response:
        cards, budget = await desk().cards.cards(), await desk().cards.budget()
        pending = len(await desk().approvals.pending())
        return HTMLResponse(pages.cards_page(cards, budget, pending, csrf_of(request)))

    def card_action(verb: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            if (refused := await form_checked(request)) is not None:
                return refused
            card_id = request.path_params["card_id"]
            cards = desk().cards
            action = {"freeze": cards.freeze, "unfreeze": cards.unfreeze, "close": cards.close}
            try:
                await action[verb](card_id)
            except AgentCardError as exc:
                page = pages.message_page(f"could not {verb}", str(exc), "/cards")
                return HTMLResponse(page, 409)
            return RedirectResponse("/cards", 303)

        return handler

    async def events(request: Request) -> Response:
        csrf = csrf_of(request)

        async def stream() -> AsyncIterator[str]:
            seen: tuple[str, ...] | None = None
            quiet = 0.0
            while True:
                pending = await desk().approvals.pending()
                ids = tuple(view.approval.id for view in pending)
                if ids != seen:
                    seen, quiet = ids, 0.0
                    pending = await in_context(desk().cards, pending)
                    data = {"count": len(pending), "html": pages.pending_list(pending, csrf)}
                    yield f"event: pending\ndata: {json.dumps(data)}\n\n"
                elif quiet >= _HEARTBEAT_S:
                    quiet = 0.0
                    yield ": still here\n\n"
                await anyio.sleep(POLL_S)
                quiet += POLL_S

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return PlainTextResponse("not found", 404)
        body = files("agentcard_mcp.console").joinpath("static", name).read_text("utf-8")
        return Response(body, media_type=_STATIC[name])

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with open_() as opened:
            desks.append(opened)
            try:
                yield
            finally:
                desks.clear()

    routes = [
        Route("/login", login, methods=["GET"]),
        Route("/", approvals_page, methods=["GET"]),
        Route(f"/approvals/{_APPROVAL_ID}", approval_link, methods=["GET"]),
        Route(f"/approvals/{_APPROVAL_ID}/approve", decide("approve"), methods=["POST"]),
        Route(f"/approvals/{_APPROVAL_ID}/deny", decide("deny"), methods=["POST"]),
        Route("/cards", cards_page, methods=["GET"]),
        *(
            Route(f"/cards/{{card_id:str}}/{verb}", card_action(verb), methods=["POST"])
            for verb in ("freeze", "unfreeze", "close")
        ),
        *keys_page.routes(desk, csrf_of, form_checked),
        *budget_page.routes(desk, csrf_of),
        *ledger_page.routes(desk, csrf_of),
        *audit_page.routes(desk, csrf_of),
        Route("/events", events, methods=["GET"]),
        Route("/static/{name:str}", static, methods=["GET"]),
    ]
    guard = Middleware(_Guard, port=port, sessions=sessions)
    return Starlette(routes=routes, lifespan=lifespan, middleware=[guard])
