"""The ``Issuer`` protocol every adapter implements, and the capabilities it declares.

A tool whose capability the configured issuer lacks fails with ``not_supported`` naming the
issuer, before any request is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

from ..models import Authorization, Card, LedgerPage

__all__ = ["Capability", "CardSpec", "Issuer", "PolicyChange"]


class Capability(StrEnum):
    CREATE_CARD = "create_card"
    LIST_CARDS = "list_cards"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    SET_POLICY = "set_policy"
    CLOSE = "close"
    LEDGER = "ledger"
    AGENT_LEDGER = "agent_ledger"
    USAGE = "usage"
    SIMULATE = "simulate"
    SINGLE_USE = "single_use"
    TTL = "ttl"
    MERCHANT_BLOCKLIST = "merchant_blocklist"


@dataclass(frozen=True, slots=True)
class CardSpec:
    agent_id: str
    purpose: str
    daily_limit_cents: int
    per_auth_max_cents: int | None
    mcc_allowlist: list[str]


@dataclass(frozen=True, slots=True)
class PolicyChange:
    daily_limit_cents: int | None = None
    per_auth_max_cents: int | None = None
    mcc_allowlist: list[str] | None = None


class Issuer(Protocol):
    name: str
    mode: Literal["test", "live"]
    capabilities: frozenset[Capability]

    async def default_agent_id(self) -> str: ...
    async def create_card(self, spec: CardSpec, idempotency_key: str) -> Card: ...
    async def get_card(self, card_id: str) -> Card: ...
    async def list_cards(self) -> list[Card]: ...
    async def freeze(self, card_id: str) -> Card: ...
    async def unfreeze(self, card_id: str) -> Card: ...
    async def set_policy(self, card_id: str, change: PolicyChange) -> Card: ...
    async def close(self, card_id: str) -> Card: ...
    async def ledger(
        self,
        *,
        card_id: str | None,
        agent_id: str | None,
        limit: int,
        cursor: str | None,
        decision: str | None,
    ) -> LedgerPage: ...
    async def usage(self) -> dict[str, Any]: ...
    async def set_merchant_blocklist(self, merchants: list[str]) -> None: ...
    async def simulate(
        self, card_id: str, amount_cents: int, merchant: str, mcc: str
    ) -> Authorization: ...
