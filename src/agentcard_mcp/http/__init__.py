"""The HTTP transports (DESIGN §10), one concept per module:

- ``hosts``: Host and Origin, checked first on every path, by exact (scheme, host, port);
- ``auth``: who may use the app (API keys, session ownership, rate limits, bounded bodies);
- ``app``: the Starlette app (``/mcp`` or ``/sse``, ``/healthz``) and serving it;
- ``refusal``: the one shape every refusal takes, ``{"error", "code", "status"}``.

Scopes are not here: what a ``cards:read`` key may call is decided by the MCP server itself
(``agentcard_mcp.scopes``), so that the agent reads the refusal through its MCP client.
"""
