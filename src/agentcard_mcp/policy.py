"""The operator's policy file (DESIGN §5): load, check, render.

The policy is TOML (``AGENTCARD_POLICY_FILE``, else ``<home>/policy.toml``, else conservative
built-in defaults). The agent has no tool that changes it. A bad file stops the server at start
with a message naming the file and the key; ``agentcard-mcp policy check FILE`` says the same.
The checks made against it are in ``guardrails``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from . import categories
from .errors import InvalidParams
from .home import check_home, read_trusted
from .redaction import redact_text

__all__ = [
    "BUILTIN_SOURCE",
    "CHANNELS",
    "Channel",
    "LoadedPolicy",
    "OperatorPolicy",
    "PolicyError",
    "duration",
    "load_policy",
    "policy_command",
    "read_policy",
    "render",
    "usd",
]

BUILTIN_SOURCE = "built-in defaults"
POLICY_FILENAME = "policy.toml"

NonNegative = Annotated[int, Field(ge=0)]
Gate = Literal["allow", "approval", "deny"]
# Where the human is asked for an approval (DESIGN §5): "auto" in band on stdio only (and for an
# HTTP key made --allow-in-band-approval); "console" always out of band; "elicit" in band wherever
# the client can show a form.
Channel = Literal["auto", "console", "elicit"]
CHANNELS: tuple[Channel, ...] = ("auto", "console", "elicit")


class PolicyError(InvalidParams):
    """The policy file cannot be used; the message names the file and the key."""


class OperatorPolicy(BaseModel):
    """The operator's ceilings. Strict: TOML ``100.0``, ``"100"`` or ``true`` is not a count."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    max_card_daily_limit_cents: NonNegative = 10_000
    max_per_auth_cents: NonNegative = 5_000
    max_total_daily_cents: NonNegative = 20_000
    max_active_cards: NonNegative = 5
    allowed_categories: tuple[str, ...] = ()
    blocked_merchants: tuple[str, ...] = ()
    max_ttl_minutes: NonNegative = 10_080
    require_approval_above_cents: NonNegative = 2_500
    unfreeze: Gate = "approval"
    close: Gate = "approval"
    approval_channel: Channel = "auto"

    @field_validator("allowed_categories", "blocked_merchants", mode="before")
    @classmethod
    def _array_to_tuple(cls, value: Any) -> Any:
        # TOML arrays arrive as lists; tuples keep a frozen policy really immutable.
        return tuple(value) if isinstance(value, list) else value

    @field_validator("allowed_categories")
    @classmethod
    def _known_categories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        tags: list[str] = []
        for item in value:
            try:
                tag = categories.normalize([item])[0]
            except InvalidParams:
                raise PydanticCustomError(
                    "unknown_category",
                    "unknown category {name}; use tags from: {tags} (or a 4-digit MCC code)",
                    {"name": repr(item[:40]), "tags": ", ".join(categories.TAGS)},
                ) from None
            if tag not in tags:
                tags.append(tag)
        return tuple(tags)

    @field_validator("blocked_merchants")
    @classmethod
    def _no_blank_merchants(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # A blank entry would block nothing real: it is a typo, not an intention.
        if any(not name.strip() for name in value):
            raise PydanticCustomError("blank_merchant", "entries must not be blank")
        return tuple(name.strip() for name in value)


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    policy: OperatorPolicy
    source: str  # the file's path, or BUILTIN_SOURCE


# --- loading ----------------------------------------------------------------------------------


def load_policy(settings_policy_file: Path | None, home: Path) -> LoadedPolicy:
    """The effective policy: the configured file (which must exist), else ``<home>/policy.toml``
    when present, else the built-in defaults. A home or a policy file that another user could
    change is refused (``home.UnsafeHome``)."""
    check_home(home)
    if settings_policy_file is not None:
        if not settings_policy_file.exists():
            raise PolicyError(
                f"{settings_policy_file}: no such policy file; create it, or unset "
                "AGENTCARD_POLICY_FILE to use <home>/policy.toml or the built-in defaults."
            )
        return LoadedPolicy(read_policy(settings_policy_file), str(settings_policy_file))
    default = home / POLICY_FILENAME
    # exists(), not is_file(): a directory in its place is a mistake to report, not to skip.
    if default.exists():
        return LoadedPolicy(read_policy(default), str(default))
    return LoadedPolicy(OperatorPolicy(), BUILTIN_SOURCE)


def read_policy(path: Path) -> OperatorPolicy:
    """The policy in one TOML file, or ``PolicyError`` naming the file and what is wrong
    (``UnsafeHome`` if another user could have written it)."""
    try:
        text = read_trusted(path).decode("utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such policy file.") from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror or exc}.") from None
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: not UTF-8 text; a policy file is TOML.") from None
    import tomllib  # only when a policy file exists: the built-in defaults need no parser

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}.") from None  # names line and column
    try:
        return OperatorPolicy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{path}: {_explain(exc)}") from None


def _explain(exc: ValidationError) -> str:
    """Every problem once, in the operator's terms; the known keys when a key is unknown and
    not a near miss of one (a typo gets "did you mean")."""
    problems: list[str] = []
    lost = False
    for error in exc.errors(include_url=False):
        problem = _describe(error)
        if error["type"] == "extra_forbidden":
            import difflib  # only to name a near miss, when the file is refused

            near = difflib.get_close_matches(str(error["loc"][0]), _KEYS, n=1)
            problem += f" (did you mean {near[0]!r}?)" if near else ""
            lost = lost or not near
        if problem not in problems:
            problems.append(problem)
    if lost:
        problems.append(f"known keys: {', '.join(_KEYS)}")
    return "; ".join(problems)


def _describe(error: ErrorDetails) -> str:
    """One validation error: the key, then what it must be."""
    key = str(error["loc"][0]) if error["loc"] else "policy"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key {key!r}"
    if kind in ("unknown_category", "blank_merchant"):
        return f"{key}: {error['msg']}"
    if key in ("allowed_categories", "blocked_merchants"):
        return f"{key}: must be an array of strings"
    if key in ("unfreeze", "close"):
        return f'{key}: must be one of "allow", "approval", "deny"'
    if key == "approval_channel":
        return f"{key}: must be one of {', '.join(map(_toml_string, CHANNELS))}"
    return f"{key}: must be a non-negative integer"


_KEYS = list(OperatorPolicy.model_fields)


# --- showing ----------------------------------------------------------------------------------


def usd(cents: int) -> str:
    """``$1,234.56`` for 123456, exactly (no float rounding on large amounts)."""
    dollars, rest = divmod(cents, 100)
    return f"${dollars:,}.{rest:02d}"


def render(policy: OperatorPolicy, source: str) -> str:
    """The policy as the TOML file that would produce it, with amounts in dollars as comments."""
    p = policy
    rows: list[tuple[str, str, str]] = [
        ("max_card_daily_limit_cents", str(p.max_card_daily_limit_cents),
         f"{usd(p.max_card_daily_limit_cents)}: highest daily limit of one card"),
        ("max_per_auth_cents", str(p.max_per_auth_cents),
         f"{usd(p.max_per_auth_cents)}: largest single purchase a card may allow"),
        ("max_total_daily_cents", str(p.max_total_daily_cents),
         f"{usd(p.max_total_daily_cents)}: what all cards may commit in one UTC day"),
        ("max_active_cards", str(p.max_active_cards), "cards active at the same time"),
        ("allowed_categories", _toml_array(p.allowed_categories),
         "every card limited to these" if p.allowed_categories else "empty: any category"),
        ("blocked_merchants", _toml_array(p.blocked_merchants),
         "refused on every card" if p.blocked_merchants else "none"),
        ("max_ttl_minutes", str(p.max_ttl_minutes),
         f"{duration(p.max_ttl_minutes)}: longest card lifetime"),
        ("require_approval_above_cents", str(p.require_approval_above_cents),
         f"{usd(p.require_approval_above_cents)}: a limit above this asks the operator"),
        ("unfreeze", _toml_string(p.unfreeze), "allow | approval | deny"),
        ("close", _toml_string(p.close), "allow | approval | deny"),
        ("approval_channel", _toml_string(p.approval_channel), _CHANNEL_NOTES[p.approval_channel]),
    ]  # fmt: skip
    width = max(len(f"{key} = {value}") for key, value, _ in rows)
    lines = [f"# agentcard-mcp policy from {source}"]
    lines += [f"{f'{key} = {value}':<{width}}  # {note}" for key, value, note in rows]
    return "\n".join(lines) + "\n"


_CHANNEL_NOTES: dict[Channel, str] = {
    "auto": "auto | console | elicit: in band on stdio, the operator on HTTP and SSE",
    "console": "auto | console | elicit: always the operator, out of band",
    "elicit": "auto | console | elicit: in band wherever the client shows a form",
}


def duration(minutes: int) -> str:
    for size, unit in ((1440, "day"), (60, "hour")):
        if minutes and minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _toml_string(text: str) -> str:
    # TOML basic string: escape the quote, the backslash and control characters (tab aside).
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif (ord(char) < 0x20 and char != "\t") or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_array(items: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_string(item) for item in items) + "]"


def policy_command(
    action: str,
    file: Path | None,
    home: Path,
    settings_policy_file: Path | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """``policy check FILE`` and ``policy show [FILE]``: what the server would enforce, or the
    error it would stop with (read through ``operator.PolicyDesk``). Exit 0, or 2 on a bad
    file."""
    from .operator import PolicyDesk  # operator.py builds on this module's rules

    desk = PolicyDesk(home, settings_policy_file)
    try:
        if action == "check":
            loaded = desk.check(file)
            out.write(f"ok: {file}\n" + render(loaded.policy, loaded.source))
            return 0
        if action == "show":
            loaded = desk.show(file)
            out.write(render(loaded.policy, loaded.source))
            return 0
        raise InvalidParams(f"unknown policy action {action!r}; use check or show.")
    except InvalidParams as exc:
        err.write(f"agentcard-mcp policy: {redact_text(str(exc))}\n")  # it may quote the file
        return 2
