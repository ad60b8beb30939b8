"""Errors the sandbox API returns, in Stripe's shape (AgentCard runs on Stripe Issuing).

{"error": {"type": "invalid_request_error", "code": "parameter_invalid",
           "param": "amount_cents", "message": "..."}}
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "conflict", "invalid", "not_found"]


class ApiError(Exception):
    """An HTTP error response; raising it inside a transaction also rolls the transaction back."""

    def __init__(
        self, status: int, type_: str, code: str, message: str, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.code = code
        self.message = message
        self.param = param

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "code": self.code, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


def invalid(param: str | None, message: str, code: str = "parameter_invalid") -> ApiError:
    return ApiError(400, "invalid_request_error", code, message, param)


def not_found(kind: str, ident: str) -> ApiError:
    shown = ident if len(ident) <= 64 else ident[:64] + "..."
    return ApiError(404, "invalid_request_error", "resource_missing", f"No such {kind}: '{shown}'")


def conflict(code: str, message: str) -> ApiError:
    return ApiError(409, "invalid_request_error", code, message)
