"""What every issuer adapter is: the ``Issuer`` protocol, ``IssuerBase`` (its refusing
defaults), the capabilities it declares, and the request types the service hands it.

A tool whose capability the configured issuer lacks fails with ``not_supported`` naming the
issuer and what to do instead, before any request is made: the service checks capabilities
first, and every ``IssuerBase`` method an adapter does not override refuses the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

from ..errors import AgentCardError, NotSupported
from ..models import Authorization, Card, IssuerLimits, LedgerPage, Policy

if TYPE_CHECKING:
    from .http import IssuerHTTP

__all__ = [
    "Capability",
    "CardSpec",
    "ErrorOverrides",
    "Issuer",
    "IssuerBase",
    "IssuerLimits",
    "Mode",
    "PolicyChange",
]

Mode = Literal["test", "live"]

# (HTTP status, the issuer's error code) → (the stable error it means at this issuer, what to
# do next), where the generic status mapping of issuers/http.py would say something else:
# ClawdCards' 403 ``limit_exceeded`` is a spending limit reached, not a bad key.
ErrorOverrides = Mapping[tuple[int, str], tuple[type[AgentCardError], str]]


class Capability(StrEnum):
    CREATE_CARD = "create_card"
    GET_CARD = "get_card"
    LIST_CARDS = "list_cards"
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    SET_POLICY = "set_policy"
    CLOSE = "close"
    LEDGER = "ledger"
    AGENT_LEDGER = "agent_ledger"
    # The issuer reports limits of its own (``Issuer.limits``): cards left, monthly room.
    USAGE = "usage"
    SIMULATE = "simulate"
    # The issuer enforces a daily limit itself (without it, only our budget counts it).
    DAILY_LIMIT = "daily_limit"
    # The issuer enforces a category allowlist (without it, one is refused, not dropped).
    CATEGORIES = "categories"
    SINGLE_USE = "single_use"
    TTL = "ttl"
    MERCHANT_BLOCKLIST = "merchant_blocklist"
    # The issuer makes one card for one Idempotency-Key however often the create is sent, so a
    # retry after an unknown outcome may simply ask again (agent-card.sh and ClawdCards
    # document no such key).
    IDEMPOTENT_CREATE = "idempotent_create"


@dataclass(frozen=True, slots=True)
class CardSpec:
    """A new card as the service asks for it: amounts in cents, categories as our tags."""

    agent_id: str
    purpose: str
    daily_limit_cents: int
    per_auth_max_cents: int | None
    mcc_allowlist: list[str]
    ttl_minutes: int | None = None
    single_use: bool = False


@dataclass(frozen=True, slots=True)
class PolicyChange:
    daily_limit_cents: int | None = None
    per_auth_max_cents: int | None = None
    mcc_allowlist: list[str] | None = None


class Issuer(Protocol):
    name: str
    mode: Mode
    capabilities: frozenset[Capability]

    def not_supported(self, what: str, capability: Capability | str) -> NotSupported: ...
    async def default_agent_id(self) -> str: ...
    async def check_agent(self, agent_id: str) -> None: ...
    async def probe(self) -> list[str]: ...
    def enforced_policy(self, spec: CardSpec) -> Policy: ...
    def enforced_policy_change(self, card: Card, change: PolicyChange) -> Policy: ...
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
    async def limits(self) -> IssuerLimits: ...
    async def spend_by_day(self) -> list[tuple[str, str, int]] | None: ...
    async def set_merchant_blocklist(self, merchants: list[str]) -> None: ...
    async def simulate(
        self, card_id: str, amount_cents: int, merchant: str, mcc: str
    ) -> Authorization: ...


class IssuerBase:
    """The base of every adapter. Each method an adapter does not override refuses with
    ``not_supported`` — naming the issuer and what to do instead — before any request.

    Subclasses set ``instead`` (what to do instead, by capability) where the generic advice
    is not the best one, and may set ``error_overrides`` (read by ``open_issuer`` into the
    adapter's ``IssuerHTTP``)."""

    # What to do instead of each capability the issuer lacks (keys: ``Capability`` values).
    instead: ClassVar[Mapping[str, str]] = {}
    error_overrides: ClassVar[ErrorOverrides] = {}

    def __init__(
        self,
        http: IssuerHTTP,
        *,
        name: str,
        mode: Mode,
        capabilities: frozenset[Capability],
        agent_id: str | None = None,
        home: Path | None = None,
    ) -> None:
        self.http = http
        self.name = name
        self.mode = mode
        self.capabilities = capabilities
        self._agent_id = agent_id
        # The server's home (AGENTCARD_HOME), for what an adapter keeps for the operator
        # (card files); None where nothing is kept.
        self.home = home

    def not_supported(self, what: str, capability: Capability | str) -> NotSupported:
        """The refusal of ``what`` (needing ``capability``): names the issuer and what to do."""
        advice = self.instead.get(
            capability, "the operator can switch AGENTCARD_ISSUER to an issuer that has it "
            "(`agentcard-mcp doctor` shows what each tool does here)"
        )  # fmt: skip
        return NotSupported(f"{what} is not supported by the {self.name} issuer; {advice}.")

    async def default_agent_id(self) -> str:
        # Issuers without agents: every card belongs to the one the operator names, or "default".
        return self._agent_id or "default"

    async def check_agent(self, agent_id: str) -> None:
        """Raises not_found unless the issuer can make a card for ``agent_id``, with a read
        (never a write), so that a create_card is not put to the human only to fail at the
        issuer. Issuers without agents take any: there is nothing to look up."""
        return

    async def probe(self) -> list[str]:
        """Proves the key is accepted by reading cards, never writing (``agentcard-mcp
        doctor``, which reads ``limits`` itself first where the issuer reports them); what it
        showed, one line each, or nothing where there is no such read. Raises the mapped
        error when the issuer refuses."""
        if Capability.LIST_CARDS in self.capabilities:
            return [f"key accepted: it lists {len(await self.list_cards())} card(s)"]
        return []

    def enforced_policy(self, spec: CardSpec) -> Policy:
        """The policy the issuer will actually enforce on a card made from ``spec``: what the
        read-back after create_card must find. By default, everything asked for."""
        return Policy(
            daily_limit_cents=spec.daily_limit_cents,
            per_auth_max_cents=spec.per_auth_max_cents or spec.daily_limit_cents,
            mcc_allowlist=list(spec.mcc_allowlist),
        )

    def enforced_policy_change(self, card: Card, change: PolicyChange) -> Policy:
        """The policy ``card`` must carry after ``change`` (the read-back after set_policy)."""
        return Policy(
            daily_limit_cents=change.daily_limit_cents or card.daily_limit_cents,
            per_auth_max_cents=change.per_auth_max_cents or card.per_auth_max_cents,
            mcc_allowlist=card.mcc_allowlist
            if change.mcc_allowlist is None
            else list(change.mcc_allowlist),
        )

    async def create_card(self, spec: CardSpec, idempotency_key: str) -> Card:
        raise self.not_supported("create_card", Capability.CREATE_CARD)

    async def get_card(self, card_id: str) -> Card:
        raise self.not_supported("get_card", Capability.GET_CARD)

    async def list_cards(self) -> list[Card]:
        raise self.not_supported("list_cards", Capability.LIST_CARDS)

    async def freeze(self, card_id: str) -> Card:
        raise self.not_supported("freeze_card", Capability.FREEZE)

    async def unfreeze(self, card_id: str) -> Card:
        raise self.not_supported("unfreeze_card", Capability.UNFREEZE)

    async def set_policy(self, card_id: str, change: PolicyChange) -> Card:
        raise self.not_supported("set_policy", Capability.SET_POLICY)

    async def close(self, card_id: str) -> Card:
        raise self.not_supported("close_card", Capability.CLOSE)

    async def ledger(
        self,
        *,
        card_id: str | None,
        agent_id: str | None,
        limit: int,
        cursor: str | None,
        decision: str | None,
    ) -> LedgerPage:
        raise self.not_supported("read_ledger", Capability.LEDGER)

    async def limits(self) -> IssuerLimits:
        """What the issuer reports of its own limits; nothing, where it reports none."""
        return IssuerLimits()

    async def spend_by_day(self) -> list[tuple[str, str, int]] | None:
        """(UTC day, category, approved cents) counted by the issuer, or None when it counts
        none (the operator's spend view then reads the ledger)."""
        return None

    async def set_merchant_blocklist(self, merchants: list[str]) -> None:
        raise self.not_supported("a merchant blocklist", Capability.MERCHANT_BLOCKLIST)

    async def simulate(
        self, card_id: str, amount_cents: int, merchant: str, mcc: str
    ) -> Authorization:
        raise self.not_supported("simulate_purchase", Capability.SIMULATE)
