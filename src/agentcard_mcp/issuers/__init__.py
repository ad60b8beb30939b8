"""Card issuers behind one protocol: request and response translation only."""

from .base import Capability, CardSpec, Issuer, PolicyChange

__all__ = ["Capability", "CardSpec", "Issuer", "PolicyChange"]
