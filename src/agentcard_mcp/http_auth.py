"""Kept for imports written before the ``http`` package: see ``agentcard_mcp.http.auth``."""

from .http.auth import AuthState, KeyAuth

__all__ = ["AuthState", "KeyAuth"]
