"""agentcard-mcp: prepaid spending cards for LLM agents, under the operator's limits."""

__version__ = "0.1.0"
