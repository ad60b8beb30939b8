"""The shape of a registry entry (``IssuerInfo``) and of what a tool does on an issuer
(``ToolUse``); the entries themselves are in ``issuers/__init__.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .base import Capability, Mode

if TYPE_CHECKING:
    from .base import IssuerBase

__all__ = ["TEST_ONLY", "TOOLS", "IssuerInfo", "ToolUse"]

# Every tool, in the README's order, and the capability it needs (None: every issuer).
TOOLS: tuple[tuple[str, Capability | None], ...] = (
    ("get_limits", None),
    ("create_card", Capability.CREATE_CARD),
    ("list_cards", Capability.LIST_CARDS),
    ("get_card", Capability.GET_CARD),
    ("freeze_card", Capability.FREEZE),
    ("unfreeze_card", Capability.UNFREEZE),
    ("set_policy", Capability.SET_POLICY),
    ("close_card", Capability.CLOSE),
    ("read_ledger", Capability.LEDGER),
    ("simulate_purchase", Capability.SIMULATE),
)
# Capabilities a live key never has: test purchases move no money only with test keys.
TEST_ONLY = frozenset({Capability.SIMULATE})

# What create_card's options need, for the notes derived from capabilities.
_CREATE_OPTIONS = (
    (Capability.DAILY_LIMIT, None, "daily limit kept by our budget, not the issuer"),
    (Capability.CATEGORIES, "mcc_allowlist", "no mcc_allowlist"),
    (Capability.SINGLE_USE, "single_use", "no single_use"),
    (Capability.TTL, "ttl_minutes", "no ttl_minutes"),
)


@dataclass(frozen=True)
class ToolUse:
    """What ``tool`` does on an issuer: ``code`` is ``ok``, ``not_supported`` or
    ``test_mode_only``; ``note`` says how it differs there."""

    tool: str
    code: str
    note: str

    @property
    def supported(self) -> bool:
        return self.code == "ok"

    def cell(self) -> str:
        """The README table's cell."""
        if self.code == "not_supported":
            return "—"
        mark = "test keys" if self.code == "test_mode_only" else "yes"
        return f"{mark}: {self.note}" if self.note else mark


@dataclass(frozen=True)
class IssuerInfo:
    name: str  # the AGENTCARD_ISSUER value
    title: str
    # The adapter class; None while this version cannot talk to the issuer yet.
    adapter: type[IssuerBase] | None
    doc: str  # its documentation in issuer-docs/
    default_base_url: str | None  # None: embedded in process
    test_key_prefixes: tuple[str, ...]
    live_key_prefixes: tuple[str, ...]
    capabilities: frozenset[Capability]
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer "
    # The issuer's documented rate limit per key (None: none documented); kept on our side.
    requests_per_minute: int | None = None
    # Tool → how it behaves differently on this issuer (shown by doctor and the README).
    notes: Mapping[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.default_base_url is None

    @property
    def needs_key(self) -> bool:
        return not self.embedded

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {self.auth_header: f"{self.auth_scheme}{api_key}"}

    def key_mode(self, api_key: str, all_live_prefixes: tuple[str, ...] = ()) -> Mode:
        """``test`` only for a key this issuer documents as a test key and no issuer as live;
        anything else may move real money."""
        if api_key.startswith(self.live_key_prefixes + all_live_prefixes):
            return "live"
        return "test" if api_key.startswith(self.test_key_prefixes) else "live"

    def capabilities_in(self, mode: Mode) -> frozenset[Capability]:
        return self.capabilities - TEST_ONLY if mode == "live" else self.capabilities

    def tool_use(self, tool: str, capability: Capability | None, mode: Mode = "test") -> ToolUse:
        if capability is not None and capability not in self.capabilities:
            return ToolUse(tool, "not_supported", f"not_supported on {self.name}")
        if capability is not None and capability not in self.capabilities_in(mode):
            return ToolUse(tool, "test_mode_only", self.notes.get(tool, ""))
        note = self.notes.get(tool, "")
        if tool == "create_card" and not note:
            note = self._create_note()
        if tool == "read_ledger" and not note and Capability.AGENT_LEDGER in self.capabilities:
            note = "per card or per agent"
        return ToolUse(tool, "ok", note)

    def _create_note(self) -> str:
        said = [
            yes if capability in self.capabilities else no
            for capability, yes, no in _CREATE_OPTIONS
        ]
        return "; ".join(s for s in said if s)

    def tool_uses(self, mode: Mode = "test") -> list[ToolUse]:
        return [self.tool_use(tool, capability, mode) for tool, capability in TOOLS]
