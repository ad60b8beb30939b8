"""The one exception root and the stable error codes an agent can branch on (DESIGN §7).

    AgentCardError                      code: message — what happened and what to do next
    ├── InvalidParams                   invalid_params
    ├── GuardrailExceeded               guardrail_exceeded
    ├── CategoryNotAllowed              category_not_allowed
    ├── MerchantBlocked                 merchant_blocked
    ├── ApprovalRequired                approval_required
    ├── ApprovalDenied                  approval_denied
    ├── NotFound                        not_found
    ├── NotSupported                    not_supported
    ├── TestModeOnly                    test_mode_only
    ├── IdempotencyConflict             idempotency_conflict
    ├── IssuerAuthFailed                issuer_auth_failed
    ├── IssuerRateLimited               issuer_rate_limited
    ├── IssuerUnavailable               issuer_unavailable
    └── IssuerRejected                  issuer_rejected

A tool error's text is ``str(error)``: the code, a colon, and the message.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AgentCardError",
    "ApprovalDenied",
    "ApprovalRequired",
    "CategoryNotAllowed",
    "GuardrailExceeded",
    "IdempotencyConflict",
    "InvalidParams",
    "IssuerAuthFailed",
    "IssuerRateLimited",
    "IssuerRejected",
    "IssuerUnavailable",
    "MerchantBlocked",
    "NotFound",
    "NotSupported",
    "TestModeOnly",
]


class AgentCardError(Exception):
    code: ClassVar[str] = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidParams(AgentCardError):
    code = "invalid_params"


class GuardrailExceeded(AgentCardError):
    code = "guardrail_exceeded"


class CategoryNotAllowed(AgentCardError):
    code = "category_not_allowed"


class MerchantBlocked(AgentCardError):
    code = "merchant_blocked"


class ApprovalRequired(AgentCardError):
    code = "approval_required"

    def __init__(self, message: str, approval_id: str | None = None) -> None:
        super().__init__(message)
        self.approval_id = approval_id


class ApprovalDenied(AgentCardError):
    code = "approval_denied"


class NotFound(AgentCardError):
    code = "not_found"


class NotSupported(AgentCardError):
    code = "not_supported"


class TestModeOnly(AgentCardError):
    code = "test_mode_only"
    __test__ = False  # not a pytest test class, whatever its name says


class IdempotencyConflict(AgentCardError):
    code = "idempotency_conflict"


class IssuerAuthFailed(AgentCardError):
    code = "issuer_auth_failed"


class IssuerRateLimited(AgentCardError):
    code = "issuer_rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IssuerUnavailable(AgentCardError):
    code = "issuer_unavailable"


class IssuerRejected(AgentCardError):
    code = "issuer_rejected"
