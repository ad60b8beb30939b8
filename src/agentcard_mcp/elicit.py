"""Asking the human through the MCP client: the form elicitation the approval resolvers use in
band (the SDK's ``Resolve``/``Elicit`` pattern, which works on both protocol versions), the
URL elicitation that sends the human to the operator console's page of a pending approval, and
what the answers mean for ``consent.settle``.

The SDK's ``Elicit`` marker renders forms only, so the URL elicitation is sent here: on the
older protocol as an ``elicitation/create`` request with ``mode: "url"`` inside the call
(``ctx.elicit_url``); on 2026-07-28 as an input-required result that ``CardServer.call_tool``
returns for the resolver (``AskAtConsole``), the approval id riding ``request_state`` (sealed
by the SDK) to the client's retry. Either way the client's answer only says whether the human
went there: what the operator decided is read from the store.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit
from mcp.types import ElicitRequest, ElicitRequestURLParams, ElicitResult, InputRequiredResult
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from .approvals import Approval
from .consent import Human
from .guardrails import Verdict

__all__ = [
    "ApprovalForm",
    "AskAtConsole",
    "AtConsole",
    "NotAsked",
    "ask",
    "at_console",
    "can_elicit",
    "can_open_url",
    "human_of",
]

# The key of our URL elicitation among a 2026-07-28 call's input requests and responses.
URL_KEY = "agentcard.approval"
# The first protocol whose tools/call asks through an input-required result.
_INPUT_REQUIRED_VERSION = "2026-07-28"


class ApprovalForm(BaseModel):
    # Strict: only a JSON ``true`` approves. Lax pydantic would read "yes", "true", "on" or 1
    # as True, so a client (or whatever answers for it) sending text would approve by accident;
    # such an answer fails the form's schema and the call is approval_denied.
    approve: bool = Field(strict=True, description="Approve this action?")


class NotAsked(BaseModel):
    """What the resolver hands the tool when it did not ask the human."""


class AtConsole(BaseModel):
    """What the resolver hands the tool when it sent the human to the console page of
    ``approval_id``: the approval to look up, not an answer."""

    approval_id: str


class AskAtConsole(ToolError):
    """Raised by a resolver on 2026-07-28 to ask through an input-required result (which the
    SDK lets a resolver return only for forms); ``CardServer.call_tool`` returns ``result``."""

    def __init__(self, result: InputRequiredResult, approval_id: str) -> None:
        super().__init__("the human is asked to open the operator console")
        self.result = result
        self.approval_id = approval_id


def can_open_url(ctx: Context[Any, Any]) -> bool:
    """Whether the client declared URL-mode elicitation."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and elicitation.url is not None


async def at_console(
    ctx: Context[Any, Any],
    approval: Callable[[], Awaitable[Approval]],
    link: Callable[[str], str],
    summary: str,
) -> AtConsole:
    """Sends the human to the console page of the pending ``approval()`` (made before the URL
    leaves) and, once the client has answered, hands on the approval to look up."""
    if ctx.protocol_version is None or not is_version_at_least(
        ctx.protocol_version, _INPUT_REQUIRED_VERSION
    ):
        pending = await approval()
        await ctx.elicit_url(_message(summary), link(pending.id), pending.id)
        return AtConsole(approval_id=pending.id)
    answered = (ctx.input_responses or {}).get(URL_KEY)
    asked = _asked(ctx.request_state)
    if isinstance(answered, ElicitResult) and asked is not None:
        return AtConsole(approval_id=asked)
    pending = await approval()
    # No elicitation_id: 2026-07-28 dropped it (the request's key names the question).
    url = ElicitRequestURLParams(message=_message(summary), url=link(pending.id))
    result = InputRequiredResult(
        input_requests={URL_KEY: ElicitRequest(params=url)},
        request_state=json.dumps({"approval_id": pending.id}),
    )
    raise AskAtConsole(result, pending.id)


def _message(summary: str) -> str:
    # The summary first: its first line holds the amounts and why approval is asked.
    return (
        f"{summary}\n\nAn AI agent asks to run this. The operator approves or denies it at "
        "this page."
    )


def _asked(request_state: str | None) -> str | None:
    """The approval id our input-required result put in ``request_state`` (which the SDK
    sealed on the way out and verified on the way back)."""
    try:
        state = json.loads(request_state or "")
    except ValueError:
        return None
    approval_id = state.get("approval_id") if isinstance(state, dict) else None
    return approval_id if isinstance(approval_id, str) else None


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
    return Elicit(f"{summary}\n\nAn AI agent asks to run this. Approve?", ApprovalForm)


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
