"""Opening the configured issuer for the server's lifetime: one shared ``httpx.AsyncClient``,
to the embedded sandbox in process (the default) or to a remote API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import httpx

from ..sandbox import Store, create_app, provision
from ..settings import Settings
from .agentcard import AgentCardIssuer
from .base import Issuer
from .http import IssuerHTTP

__all__ = ["open_issuer"]

log = logging.getLogger("agentcard_mcp")

_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@asynccontextmanager
async def open_issuer(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[Issuer]:
    """The issuer ``settings`` name; ``transport`` replaces the network for a remote issuer
    (tests hand in a fake issuer app here)."""
    settings.check()
    if settings.issuer == "sandbox":
        async with _embedded_sandbox(settings) as issuer:
            yield issuer
        return
    assert settings.api_key is not None  # settings.check() made sure
    headers = {"Authorization": f"Bearer {settings.api_key.get_secret_value()}"}
    mode: Literal["test", "live"] = "live" if settings.is_live_key() else "test"
    async with httpx.AsyncClient(
        base_url=settings.issuer_base_url(), headers=headers, timeout=_TIMEOUT, transport=transport
    ) as client:
        log.warning("issuer: %s at %s (%s mode)", settings.issuer, settings.issuer_base_url(), mode)
        http = IssuerHTTP(client, settings.issuer)
        yield AgentCardIssuer(http, name=settings.issuer, mode=mode, agent_id=settings.agent_id)


@asynccontextmanager
async def _embedded_sandbox(settings: Settings) -> AsyncIterator[Issuer]:
    db = settings.ensure_home() / "sandbox.db"
    store = Store(db)
    try:
        credentials = provision(store, db)
        app = create_app(store)
        headers = {"Authorization": f"Bearer {credentials.api_key}"}
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://sandbox", headers=headers
            ) as client,
        ):
            log.warning(
                "issuer: the embedded AgentCard sandbox, TEST MODE (no real money), database %s",
                db,
            )
            http = IssuerHTTP(client, "sandbox")
            yield AgentCardIssuer(
                http,
                name="sandbox",
                mode="test",
                agent_id=settings.agent_id or credentials.agent_id,
                owner_settings=True,
            )
    finally:
        store.close()
