"""Kept for imports written before the ``http`` package: see ``agentcard_mcp.http.auth`` (the
keys themselves are ``agentcard_mcp.keys``, their stores ``storage``, scopes ``scopes``)."""

from .http.auth import AuthState, KeyAuth
from .keys import KEY_PATTERN, ApiKey, hash_key, keys_command, new_key
from .scopes import READ_TOOLS
from .storage.base import KeyStore, RateLimits, SessionBindings

__all__ = [
    "KEY_PATTERN",
    "READ_TOOLS",
    "ApiKey",
    "AuthState",
    "KeyAuth",
    "KeyStore",
    "RateLimits",
    "SessionBindings",
    "hash_key",
    "keys_command",
    "new_key",
]
