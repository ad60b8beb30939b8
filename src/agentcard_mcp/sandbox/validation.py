"""Request bodies, validated strictly: amounts are integer cents and nothing else.

A float (``5.00``), a numeric string (``"500"``), a bool, zero or a negative number is refused
with a 400 naming the field — AgentCard's own "critical gotcha" is that such values are
otherwise misread. Unknown fields are refused too, so a typo never silently drops a limit.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from .. import jsonlimits
from .errors import ApiError, invalid

__all__ = [
    "AgentCreate",
    "AgentPatch",
    "CardCreate",
    "CardPatch",
    "Cents",
    "OwnerPatch",
    "SignUp",
    "Swipe",
    "Verify",
    "WebhookSet",
    "parse_body",
]

# Ten billion dollars: far above any real card, far below SQLite's 64-bit integer range.
MAX_CENTS = 1_000_000_000_000

Cents = Annotated[int, Field(strict=True, gt=0, le=MAX_CENTS)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=2000)]
Tag = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=1,
        max_length=64,
        pattern=r"(?i)^[a-z0-9_\-]+$",
    ),
]
# (?i): pydantic checks the pattern before lowering, so "Travel" and "EUR" must match too.
Currency = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"(?i)^[a-z]{3}$")
]


class _Body(BaseModel):
    # Each validator is built on the first body of its kind (defer_build): a server start
    # needs one of these models, if any, and building all of them cost every spawn ~5 ms.
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)


class SignUp(_Body):
    human_email: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True,
            to_lower=True,
            max_length=254,
            pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        ),
    ]
    agent_name: Text | None = None


class Verify(_Body):
    verification_id: Text
    otp_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]


class AgentCreate(_Body):
    name: Text
    description: LongText | None = None


class AgentPatch(_Body):
    name: Text | None = None
    description: LongText | None = None


class CardCreate(_Body):
    agent_id: Text
    daily_limit_cents: Cents
    per_auth_max_cents: Cents | None = None
    mcc_allowlist: Annotated[list[Tag], Field(max_length=50)] = []
    nickname: Text | None = None


class CardPatch(_Body):
    daily_limit_cents: Cents | None = None
    per_auth_max_cents: Cents | None = None
    mcc_allowlist: Annotated[list[Tag], Field(max_length=50)] | None = None
    nickname: Text | None = None


class Swipe(_Body):
    card_id: Text
    amount_cents: Cents
    merchant: Text
    mcc: Tag
    currency: Currency = "usd"
    # The card network's own id for this authorization attempt; a repeat is a replay.
    network_id: Text | None = None
    # A decline the network made for a reason AgentCard does not normalize (e.g. "suspected_fraud").
    network_decline: Text | None = None


class WebhookSet(_Body):
    url: Annotated[str, StringConstraints(max_length=2000, pattern=r"^https?://\S+$")]

    @field_validator("url")
    @classmethod
    def _parses(cls, value: str) -> str:
        try:
            httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid URL ({exc})") from None
        return value


class OwnerPatch(_Body):
    merchant_blocklist: Annotated[list[Text], Field(max_length=1000)] | None = None
    enabled_currencies: Annotated[list[Currency], Field(min_length=1, max_length=50)] | None = None


M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M], raw: bytes) -> M:
    """Parse a JSON request body into ``model``, or raise a 400 that names the bad field."""
    data: Any = {}
    if raw.strip():
        try:
            data = jsonlimits.loads(raw)
        except jsonlimits.JsonTooDeep:
            message = f"Request body nests deeper than {jsonlimits.MAX_DEPTH} levels."
            raise invalid(None, message, "body_not_json") from None
        except ValueError:
            raise invalid(None, "Request body is not valid JSON.", "body_not_json") from None
    if not isinstance(data, dict):
        raise invalid(None, "Request body must be a JSON object.", "body_not_object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc) from None


def _first_error(exc: ValidationError) -> ApiError:
    error = exc.errors(include_url=False, include_input=False)[0]
    param = ".".join(str(part) for part in error["loc"]) or None
    kind = error["type"]
    if kind == "extra_forbidden":
        return invalid(param, f"Unknown field '{param}'.", "parameter_unknown")
    if kind == "missing":
        return invalid(param, f"Missing required field '{param}'.", "parameter_missing")
    if param is not None and param.endswith("_cents"):
        return invalid(
            param,
            f"{param} must be a positive integer number of USD cents (e.g. 500 for $5.00), "
            f"at most {MAX_CENTS}.",
            "invalid_amount",
        )
    return invalid(param, f"Invalid value for '{param}': {error['msg']}.")
