"""Consent: how an action that needs the human's approval gets it (no MCP here: asking in band
is the server's part, ``elicit``; what the human answered arrives as a ``Human``).

Three ways, tried in this order:

1. ``approval_id``: the operator approved this exact call out of band
   (``agentcard-mcp approvals approve ID``); the approval is consumed, once.
2. In band: the MCP client asked the human (a form with the exact action and amounts). Accept
   proceeds; anything else is ``approval_denied``. Only where the policy's ``approval_channel``
   trusts the client to be the human's (``in_band``): on HTTP and SSE the client is code on the
   agent's side, so by default it is not asked there.
3. Otherwise a pending approval is recorded and the call fails ``approval_required`` naming its
   id and its page in the operator's console; the agent repeats the call with ``approval_id``
   once the operator has approved. Where the client can open a URL for the human (URL-mode
   elicitation), the server sends that page first and then looks the approval up
   (``CallConsent.url_shown``): the client's answer only says the human went there.

The agent cannot approve its own request: approvals are decided only by the human, in the
client's own UI or in the operator's terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from .approval_text import summarize
from .approvals import Approval
from .errors import ApprovalDenied, ApprovalRequired
from .guardrails import Verdict
from .models import WriteRequest
from .policy import Channel
from .storage.base import ApprovalStore

__all__ = [
    "AuditNote",
    "CallConsent",
    "Human",
    "Reach",
    "caller",
    "console_link",
    "in_band",
    "pending",
    "reach",
    "settle",
    "summarize",
]

# What the human said in band: "approved"; "not_approved" (the form came back unticked);
# "declined" (declined or dismissed the form); None when nobody was asked.
Human = Literal["approved", "not_approved", "declined"] | None


@dataclass
class AuditNote:
    """What a call's audit line needs from deep inside it: the card and the approval used.
    The server makes one per call and hands it to the service, which fills it in."""

    card_id: str | None = None
    approval_id: str | None = None


@dataclass(frozen=True, slots=True)
class CallConsent:
    """How one call comes: with the operator's approval id, with what the human answered in
    band (None: not asked), and with the audit note to fill in."""

    approval_id: str | None = None
    human: Human = None
    note: AuditNote | None = None
    # The client was sent the console page of ``approval_id`` (URL-mode elicitation); whether
    # the operator decided there is for the store to say, never for the client's answer.
    url_shown: bool = False


# Who is calling: "stdio", or an HTTP API key's id (set by the HTTP transport).
caller: ContextVar[str] = ContextVar("caller", default="stdio")


@dataclass(frozen=True, slots=True)
class Reach:
    """How the call reaches the server, as far as asking the human in band goes."""

    transport: Literal["stdio", "http", "sse"] = "stdio"
    # False on stateless HTTP: no session to carry a form to the client and its answer back.
    session: bool = True
    # The calling HTTP key was made with ``keys create --allow-in-band-approval``.
    key_allows_in_band: bool = False


STDIO = Reach()
# Set by the HTTP transport with the caller (``KeyAuth``); stdio and in-memory clients keep the
# default.
reach: ContextVar[Reach] = ContextVar("reach", default=STDIO)


def in_band(channel: Channel, via: Reach) -> bool:
    """Whether the human may be asked through the MCP client (DESIGN §5). On stdio the client is
    the host the person sits at; over HTTP and SSE it is whatever the agent's side runs, so
    ``auto`` trusts it only for a key the operator marked so."""
    if not via.session or channel == "console":
        return False
    if channel == "elicit":
        return True
    return via.transport == "stdio" or via.key_allows_in_band


def console_link(console_url: str, approval_id: str) -> str:
    """The operator console's page of one approval."""
    return f"{console_url.rstrip('/')}/approvals/{approval_id}"


async def pending(
    approvals: ApprovalStore,
    request: WriteRequest,
    verdict: Verdict,
    notify: Callable[[Approval], None] | None = None,
) -> Approval:
    """The pending approval of exactly ``request`` (the one already pending, or a new one).
    ``notify`` is told of a new one (the operator's webhook; it never waits for the delivery)."""
    tool, arguments = request.tool, request.arguments()
    summary = summarize(tool, arguments, verdict)
    # Who asked (an HTTP key's id, or "stdio"), for the operator to see.
    approval, new = await approvals.request(tool, arguments, summary, caller=caller.get())
    if new and notify is not None:
        notify(approval)
    return approval


async def settle(
    approvals: ApprovalStore,
    request: WriteRequest,
    verdict: Verdict,
    call: CallConsent,
    notify: Callable[[Approval], None] | None = None,
    *,
    console_url: str,
) -> str | None:
    """Returns the approval id the action goes ahead under (None when none was needed), or
    raises approval_required / approval_denied. The approval covers ``request`` exactly.
    ``notify`` is told of each new pending approval (not of one already pending);
    ``approval_required`` names the approval's page at ``console_url``."""
    if not verdict.needs_approval:
        return None
    tool, arguments = request.tool, request.arguments()
    approval_id, human, note = call.approval_id, call.human, call.note
    summary = summarize(tool, arguments, verdict)
    if approval_id is not None:
        try:
            return _noted(note, (await approvals.consume(approval_id, tool, arguments)).id)
        except ApprovalRequired:
            if not call.url_shown:
                raise
            _noted(note, approval_id)
            raise ApprovalRequired(
                f"this call is waiting for the operator's decision at "
                f"{console_link(console_url, approval_id)} (id {approval_id}). Once they have "
                f'decided, repeat this exact call with approval_id="{approval_id}". It asks:\n'
                f"{summary}",
                approval_id=approval_id,
            ) from None
    if human is not None:
        approved = human == "approved"
        record = await approvals.record_elicited(
            tool, arguments, summary, approved, caller=caller.get()
        )
        _noted(note, record.id)
        if approved:
            return record.id
        if human == "not_approved":
            raise ApprovalDenied(f"the human did not approve this call:\n{summary}")
        raise ApprovalDenied(f"the human declined this call:\n{summary}")
    asked = await pending(approvals, request, verdict, notify)
    raise ApprovalRequired(
        f"this call needs the operator's approval (id {asked.id}, valid 10 minutes). Ask them to "
        f"approve it at {console_link(console_url, asked.id)} or with "
        f"`agentcard-mcp approvals approve {asked.id}`, then repeat this exact call with "
        f'approval_id="{asked.id}". It asks:\n{summary}',
        approval_id=asked.id,
    )


def _noted(note: AuditNote | None, approval_id: str) -> str:
    if note is not None:
        note.approval_id = approval_id
    return approval_id
