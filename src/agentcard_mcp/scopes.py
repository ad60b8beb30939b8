"""What an HTTP key's scope lets it call (DESIGN §10). The MCP server decides, in one place —
``CardServer.list_tools`` offers only ``offered(...)`` and ``CardServer.call_tool`` calls
``check`` first — so that a ``cards:read`` key is never shown the write tools, and a write call
it makes anyway is refused as a JSON-RPC error the agent reads through its MCP client
(``INSUFFICIENT_SCOPE: this key has cards:read; create_card needs cards:write``), not as an HTTP
status its client turns into "Server returned an error response".

The HTTP layer sets ``granted`` from the calling key with the caller (``http.auth``); stdio and
in-memory clients keep the default, every tool. The read tools are named here, not derived from
their annotations: a tool added later is a write tool until it is listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar

from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_REQUEST
from mcp.types import Tool as MCPTool

from .keys import Scope

__all__ = ["READ_TOOLS", "allows", "check", "granted", "offered"]

# What a cards:read key may call; everything else needs cards:write.
READ_TOOLS = frozenset({"get_limits", "list_cards", "get_card", "read_ledger"})

granted: ContextVar[Scope] = ContextVar("granted", default="cards:write")


def allows(tool: str) -> bool:
    return granted.get() == "cards:write" or tool in READ_TOOLS


def offered(tools: Sequence[MCPTool]) -> list[MCPTool]:
    """The tools the caller's scope lets it call."""
    return [tool for tool in tools if allows(tool.name)]


def check(tool: str) -> None:
    """Refuses a call beyond the caller's scope, as a JSON-RPC error (before the arguments are
    looked at: a read key learns nothing about a write tool's arguments)."""
    if not allows(tool):
        shown = tool[:64].encode("ascii", "backslashreplace").decode()
        raise MCPError(
            INVALID_REQUEST,
            f"INSUFFICIENT_SCOPE: this key has {granted.get()}; {shown} needs cards:write",
        )
