"""Consent: how an action that needs the human's approval gets it.

Three ways, tried in this order:

1. ``approval_id``: the operator approved this exact call out of band
   (``agentcard-mcp approvals approve ID``); the approval is consumed, once.
2. Elicitation: the MCP client asks the human (a form with the exact action and amounts) —
   through the SDK's ``Resolve``/``Elicit`` resolver pattern, which works on both protocol
   versions. Accept proceeds; decline or cancel is ``approval_denied``.
3. Otherwise a pending approval is recorded and the call fails ``approval_required`` naming its
   id; the agent repeats the call with ``approval_id`` once the operator has approved.

The agent cannot approve its own request: approvals are decided only by the human, in the
client's own UI or in the operator's terminal.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.resolve import Elicit
from pydantic import BaseModel, Field

from .errors import ApprovalDenied, ApprovalRequired
from .guardrails import Verdict
from .redaction import redact_text
from .storage.base import ApprovalStore

__all__ = [
    "ApprovalForm",
    "AuditNote",
    "NotAsked",
    "ask",
    "audit_note",
    "caller",
    "can_elicit",
    "settle",
    "summarize",
]


@dataclass
class AuditNote:
    """What a call's audit line needs from deep inside it: the card and the approval used."""

    card_id: str | None = None
    approval_id: str | None = None


# Set per tool call by the server; a mutable note, so that it is shared even where the SDK
# copies the context into a task of its own.
audit_note: ContextVar[AuditNote | None] = ContextVar("audit_note", default=None)
# Who is calling: "stdio", or an HTTP API key's id (set by the HTTP transport).
caller: ContextVar[str] = ContextVar("caller", default="stdio")


def _noted(approval_id: str) -> str:
    note = audit_note.get()
    if note is not None:
        note.approval_id = approval_id
    return approval_id


class ApprovalForm(BaseModel):
    approve: bool = Field(description="Approve this action?")


class NotAsked(BaseModel):
    """What the resolver hands the tool when it did not ask the human."""


def can_elicit(ctx: Context[Any, Any]) -> bool:
    """Whether the client declared form elicitation (asking one that did not is a protocol
    error, not a tool error)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def summarize(tool: str, arguments: Mapping[str, Any], verdict: Verdict) -> str:
    """The action as the human will see it. Agent-written text is shown with control and
    formatting characters escaped: a right-to-left override in a purpose must not be able to
    make "5000" read as "0005" in the approval form."""
    shown = {
        k: v
        for k, v in arguments.items()
        if v not in (None, "", False) and k not in ("approval_id", "idempotency_key")
    }
    detail = ", ".join(f"{k}={_visible(redact_text(str(v)))}" for k, v in shown.items())
    why = "; ".join(verdict.reasons)
    return redact_text(f"{tool}({detail})" + (f" — {why}" if why else ""))


def _visible(text: str) -> str:
    return "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf") else c for c in text
    )


def ask(
    ctx: Context[Any, Any],
    verdict: Verdict,
    approval_id: str | None,
    summary: str,
    *,
    in_band: bool = True,
) -> Elicit[ApprovalForm] | NotAsked:
    """The resolver's answer: ask the human only when approval is needed, no approval id was
    given, the transport allows asking in band, and the client can show a form."""
    if not verdict.needs_approval or approval_id is not None or not in_band:
        return NotAsked()
    if not can_elicit(ctx):
        return NotAsked()
    return Elicit(f"An AI agent asks to run {summary}. Approve?", ApprovalForm)


async def settle(
    approvals: ApprovalStore,
    tool: str,
    arguments: Mapping[str, Any],
    verdict: Verdict,
    answer: ElicitationResult[ApprovalForm] | None,
) -> str | None:
    """Returns the approval id the action goes ahead under (None when none was needed), or
    raises approval_required / approval_denied."""
    if not verdict.needs_approval:
        return None
    summary = summarize(tool, arguments, verdict)
    approval_id = arguments.get("approval_id")
    if approval_id is not None:
        return _noted((await approvals.consume(approval_id, tool, dict(arguments))).id)
    if isinstance(answer, AcceptedElicitation) and isinstance(answer.data, ApprovalForm):
        record = await approvals.record_elicited(
            tool, dict(arguments), summary, answer.data.approve
        )
        _noted(record.id)
        if answer.data.approve:
            return record.id
        raise ApprovalDenied(f"the human did not approve {summary}.")
    if answer is not None and not isinstance(answer, AcceptedElicitation):
        _noted((await approvals.record_elicited(tool, dict(arguments), summary, False)).id)
        raise ApprovalDenied(f"the human declined {summary}.")
    pending = await approvals.request(tool, dict(arguments), summary)
    raise ApprovalRequired(
        f"{summary} needs the operator's approval (id {pending.id}, valid 10 minutes). Ask them to "
        f"run `agentcard-mcp approvals approve {pending.id}`, then repeat this exact call with "
        f'approval_id="{pending.id}".',
        approval_id=pending.id,
    )
