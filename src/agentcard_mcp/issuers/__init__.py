"""The issuer registry: every card issuer this server can talk to, in one place.

Settings validation (AGENTCARD_ISSUER's values, which keys are live), ``open_issuer``,
``agentcard-mcp doctor`` and the README's table of what each tool does on each issuer are all
derived from ``REGISTRY``; no other module names an issuer.

How to add an issuer
--------------------
1. Write ``issuers/<name>.py``: a class subclassing ``IssuerBase`` (issuers/base.py) that
   overrides only what the issuer can do — every method left alone refuses with
   ``not_supported`` naming the issuer, before any request. Set ``instead`` (what to do
   instead, keyed by ``Capability`` value) and ``error_overrides`` (``(status, issuer code)
   → (error class, what to do next)``, e.g. ``(403, "limit_exceeded"): (IssuerRejected,
   "...")``); override ``probe`` for a key check that reads more than the card list. Override
   ``enforced_policy`` / ``enforced_policy_change`` when the issuer enforces less (or other)
   than asked, so the read-back compares against what it really enforces, and ``limits`` to
   return a typed ``IssuerLimits``. Translate only: amounts in integer cents ⇄ the issuer's
   unit exactly, statuses to ``CardStatus``; use ``self.http.request`` (retries, idempotency
   keys, pacing, error mapping) and never build another client. The constructor is
   ``IssuerBase.__init__``'s (http, name, mode, capabilities, agent_id, home); extend, don't
   change it.
2. Add an ``IssuerInfo`` to ``REGISTRY`` below: its adapter class, auth header, default base
   URL, test and live key prefixes, documented rate limit, capabilities, and a short note per
   tool where it behaves differently there.
3. Write ``tests/fakes/<name>.py`` from the issuer's documentation, add it to the contract
   suite's parametrization (tests/issuers/test_contract.py), and regenerate the README table
   with ``python -m agentcard_mcp.issuers.table --write README.md``.
"""

from __future__ import annotations

from .agentcard import AgentCardIssuer
from .agentcard_sh import AgentCardShIssuer
from .base import Capability, CardSpec, Issuer, IssuerBase, IssuerLimits, PolicyChange
from .clawdcards import ClawdCardsIssuer
from .proxy import ProxyIssuer
from .registry import TOOLS, IssuerInfo, ToolUse

__all__ = [
    "DEFAULT_ISSUER",
    "LIVE_KEY_PREFIXES",
    "REGISTRY",
    "TOOLS",
    "Capability",
    "CardSpec",
    "Issuer",
    "IssuerBase",
    "IssuerInfo",
    "IssuerLimits",
    "PolicyChange",
    "ToolUse",
    "issuer_info",
]

C = Capability
_AGENTCARD = frozenset({
    C.CREATE_CARD, C.GET_CARD, C.LIST_CARDS, C.FREEZE, C.UNFREEZE, C.SET_POLICY, C.CLOSE,
    C.LEDGER, C.AGENT_LEDGER, C.USAGE, C.SIMULATE, C.DAILY_LIMIT, C.CATEGORIES,
    C.IDEMPOTENT_CREATE,
})  # fmt: skip

# Every ClawdCards card is single-use with one merchant category; its amount is both limits.
_CLAWDCARDS = frozenset({
    C.CREATE_CARD, C.USAGE, C.SINGLE_USE, C.TTL, C.DAILY_LIMIT, C.CATEGORIES, C.LEDGER,
    C.AGENT_LEDGER,
})  # fmt: skip

_PROXY = frozenset({
    C.CREATE_CARD, C.GET_CARD, C.LIST_CARDS, C.FREEZE, C.UNFREEZE, C.CLOSE, C.LEDGER,
    C.DAILY_LIMIT, C.SINGLE_USE, C.TTL, C.IDEMPOTENT_CREATE,
})  # fmt: skip

REGISTRY: dict[str, IssuerInfo] = {
    info.name: info
    for info in (
        IssuerInfo(
            name="sandbox",
            title="the embedded AgentCard sandbox",
            adapter=AgentCardIssuer,
            doc="agentcard-so.md",
            default_base_url=None,  # in process (sandbox.direct.InProcessTransport)
            test_key_prefixes=("ac_test_",),
            live_key_prefixes=(),
            # The owner's merchant blocklist is a dashboard setting at AgentCard; only the
            # sandbox offers it through the API (PATCH /v1/owner).
            capabilities=_AGENTCARD | {C.MERCHANT_BLOCKLIST},
        ),
        IssuerInfo(
            name="agentcard",
            title="AgentCard v1",
            adapter=AgentCardIssuer,
            doc="agentcard-so.md",
            default_base_url="https://api.agentcard.so",
            test_key_prefixes=("ac_test_",),
            live_key_prefixes=("ac_live_",),
            capabilities=_AGENTCARD,
        ),
        IssuerInfo(
            name="agentcard-sh",
            title="agent-card.sh v1",
            adapter=AgentCardShIssuer,
            doc="agent-card-sh.txt, more-facts.md",
            default_base_url="https://api.agent-card.sh",
            # No test keys are documented: every agent-card.sh key moves real money.
            test_key_prefixes=(),
            live_key_prefixes=("ak_",),
            requests_per_minute=100,
            capabilities=frozenset(
                {C.CREATE_CARD, C.GET_CARD, C.LIST_CARDS, C.FREEZE, C.UNFREEZE, C.CLOSE, C.LEDGER}
            ),
            notes={
                "create_card": "starts pending until the human approves it on agent-card.sh; "
                "the issuer enforces the per-purchase limit, our budget the daily one",
                "unfreeze_card": "activates an approved or frozen card",
                "read_ledger": "per card (its transactions)",
            },
        ),
        IssuerInfo(
            name="clawdcards",
            title="ClawdCards",
            adapter=ClawdCardsIssuer,
            doc="clawdcards.txt, more-facts.md",
            default_base_url="https://api.clawd.cards",
            test_key_prefixes=("sk_test_",),
            live_key_prefixes=("sk_live_",),
            requests_per_minute=1,
            capabilities=_CLAWDCARDS,
            notes={
                "create_card": "single-use, one merchant category, ttl_minutes 1-1440, at most "
                "the per-transaction limit; its details go to the operator's card file "
                "(AGENTCARD_HOME/cards/)",
                "get_limits": "with ClawdCards' monthly limit and card pool",
                "read_ledger": "its transactions, where the API still has them",
            },
        ),
        IssuerInfo(
            name="proxy",
            title="Proxy",
            adapter=ProxyIssuer,
            doc="proxy-create-card.txt, more-facts.md",
            default_base_url="https://api.useproxy.ai",
            auth_header="Api-Key",
            auth_scheme="",
            test_key_prefixes=("lk_dev_",),
            live_key_prefixes=("lk_live_",),
            requests_per_minute=30,
            capabilities=_PROXY,
            notes={
                "create_card": "single or multi use, per-purchase and daily limits, no "
                "mcc_allowlist; rawPan details go to the operator's card file "
                "(AGENTCARD_HOME/cards/)",
                "read_ledger": "per card (its authorizations)",
            },
        ),
    )
}

# Keys that move real money at any issuer: refused unless AGENTCARD_LIVE=1, whatever issuer is
# configured (a live key of one issuer pasted under another is still a live key). Stripe's
# restricted live keys too: AgentCard issues on Stripe.
LIVE_KEY_PREFIXES: tuple[str, ...] = (
    *dict.fromkeys(p for info in REGISTRY.values() for p in info.live_key_prefixes),
    "rk_live_",
)


# The issuer when AGENTCARD_ISSUER is unset: the embedded sandbox, test mode, no account.
DEFAULT_ISSUER = "sandbox"


def issuer_info(name: str) -> IssuerInfo:
    """The registry entry for ``name`` (a KeyError for a name settings never let through)."""
    return REGISTRY[name]
