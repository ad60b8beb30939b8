"""Opening the configured issuer for the server's lifetime: one shared ``httpx.AsyncClient``,
to the embedded sandbox in process (the default) or to a remote API, as the registry says."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from ..sandbox import Store, create_app, provision
from ..sandbox.direct import InProcessTransport
from ..settings import Settings
from . import issuer_info
from .base import Issuer
from .http import IssuerHTTP
from .pacing import Pace
from .registry import IssuerInfo

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
    info = issuer_info(settings.issuer)
    if info.embedded:
        async with _embedded_sandbox(settings, info) as issuer:
            yield issuer
        return
    assert settings.api_key is not None  # settings.check() made sure of both
    assert info.adapter is not None
    mode = settings.key_mode()
    async with httpx.AsyncClient(
        base_url=settings.issuer_base_url(),
        headers=info.auth_headers(settings.api_key.get_secret_value()),
        timeout=_TIMEOUT,
        transport=transport,
    ) as client:
        log.warning("issuer: %s at %s (%s mode)", settings.issuer, settings.issuer_base_url(), mode)
        pace = Pace(info.requests_per_minute) if info.requests_per_minute else None
        http = IssuerHTTP(
            client, settings.issuer, overrides=info.adapter.error_overrides, pace=pace
        )
        yield info.adapter(
            http,
            name=settings.issuer,
            mode=mode,
            capabilities=info.capabilities_in(mode),
            agent_id=settings.agent_id,
            home=settings.home,
        )


@asynccontextmanager
async def _embedded_sandbox(settings: Settings, info: IssuerInfo) -> AsyncIterator[Issuer]:
    assert info.adapter is not None
    db = settings.ensure_home() / "sandbox.db"
    store = Store(db)
    try:
        credentials = provision(store, db)
        app = create_app(store)
        transport = InProcessTransport(app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=transport,
                base_url="http://sandbox",
                headers=info.auth_headers(credentials.api_key),
            ) as client,
        ):
            log.warning(
                "issuer: the embedded AgentCard sandbox, TEST MODE (no real money), database %s",
                db,
            )
            http = IssuerHTTP(
                client, info.name, overrides=info.adapter.error_overrides, in_process=transport
            )
            yield info.adapter(
                http,
                name=info.name,
                mode="test",
                capabilities=info.capabilities_in("test"),
                agent_id=settings.agent_id or credentials.agent_id,
                home=settings.home,
            )
    finally:
        store.close()
