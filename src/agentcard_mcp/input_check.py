"""Tool arguments checked against the tool's own advertised ``inputSchema``, first.

The SDK reads a string given for a parameter that is not plainly ``str`` as JSON before it
validates (``"null"`` becomes None, ``"[1]"`` a list), and the pydantic types strip whitespace
before they check a pattern or a length. So arguments the schema refuses could be taken: an
``approval_id`` of ``"null"``, a ``card_id`` of ``" card_1"``. Checked here against exactly the
schema ``tools/list`` shows, they are refused as ``invalid_params`` before anything runs, and
what the agent was told is what the server holds to.

An explicit null for an optional argument means "not given" (DESIGN §4: the schema gives an
optional argument its one type and leaves it out of ``required``), so it is not checked.

The message names the argument and the rule it broke, never the value (which may be huge, or
not meant to be echoed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from .errors import InvalidParams

__all__ = ["InputCheck"]

_MAX_PROBLEMS = 3


class InputCheck:
    """The advertised input schemas, compiled once."""

    def __init__(self) -> None:
        self._validators: dict[str, Any] | None = None
        self._required: dict[str, frozenset[str]] = {}

    @property
    def loaded(self) -> bool:
        return self._validators is not None

    def load(self, schemas: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        """(tool name, inputSchema) of every tool, as ``tools/list`` shows them."""
        self._validators = {}
        for name, schema in schemas:
            self._validators[name] = jsonschema.validators.validator_for(schema)(schema)
            self._required[name] = frozenset(schema.get("required", ()))

    def check(self, tool: str, arguments: Mapping[str, Any]) -> None:
        """Raises ``InvalidParams`` if ``arguments`` break ``tool``'s schema (an unknown tool is
        left to the SDK)."""
        validator = (self._validators or {}).get(tool)
        if validator is None:
            return
        required = self._required[tool]
        if any(value is None and name not in required for name, value in arguments.items()):
            arguments = {k: v for k, v in arguments.items() if v is not None or k in required}
        if validator.is_valid(arguments):  # the common case, fast
            return
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
        if not errors:
            return
        problems = [_problem(error, arguments) for error in errors[:_MAX_PROBLEMS]]
        text = "; ".join(problems) + "; see the tool's inputSchema."
        if "_cents" in text:
            text += " Amounts are integer USD cents (1500 = $15.00)."
        raise InvalidParams(text)


def _problem(error: Any, arguments: Mapping[str, Any]) -> str:
    field = ".".join(str(p) for p in error.absolute_path) or "arguments"
    rule, value = error.validator, error.validator_value
    if rule == "required":
        missing = [name for name in value if name not in arguments]
        return f"{', '.join(missing) or field}: required"
    if rule == "type":
        kinds = [value] if isinstance(value, str) else list(value)
        return f"{field}: must be of type {' or '.join(kinds)}"
    if rule == "pattern":
        return f"{field}: must match {value}"
    if rule == "enum":
        return f"{field}: must be one of {', '.join(json.dumps(v) for v in value)}"
    limits = {
        "maxLength": "at most {} characters",
        "minLength": "at least {} characters",
        "maximum": "at most {}",
        "minimum": "at least {}",
        "maxItems": "at most {} items",
        "minItems": "at least {} items",
    }
    if rule in limits:
        return f"{field}: {limits[rule].format(value)}"
    return f"{field}: not valid ({rule})"
