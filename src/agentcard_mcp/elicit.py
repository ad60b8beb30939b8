"""Asking the human in band: the MCP form elicitation the approval resolvers use (the SDK's
``Resolve``/``Elicit`` pattern, which works on both protocol versions), and what its answer
means for ``consent.settle``."""

from __future__ import annotations

from typing import Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.resolve import Elicit
from pydantic import BaseModel, Field

from .consent import Human
from .guardrails import Verdict

__all__ = ["ApprovalForm", "NotAsked", "ask", "can_elicit", "human_of"]


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


def ask(
    ctx: Context[Any, Any],
    verdict: Verdict,
    approval_id: str | None,
    summary: str,
    *,
    in_band: bool = True,
) -> Elicit[ApprovalForm] | NotAsked:
    """The resolver's answer: ask the human only when approval is needed, no approval id was
    given, the approval channel allows asking this caller in band (``consent.in_band``), and
    the client can show a form."""
    if not verdict.needs_approval or approval_id is not None or not in_band:
        return NotAsked()
    if not can_elicit(ctx):
        return NotAsked()
    return Elicit(f"An AI agent asks to run {summary}. Approve?", ApprovalForm)


def human_of(answer: ElicitationResult[ApprovalForm] | None) -> Human:
    """What the human said, as ``consent.settle`` takes it. A resolver that did not ask hands
    the tool its ``NotAsked`` as accepted data: nobody was asked."""
    if answer is None:
        return None
    if isinstance(answer, AcceptedElicitation):
        if isinstance(answer.data, ApprovalForm):
            return "approved" if answer.data.approve else "not_approved"
        return None
    return "declined"
