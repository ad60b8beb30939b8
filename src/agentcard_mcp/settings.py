"""Settings, read once at the edge from the environment (prefix ``AGENTCARD_``) or ``.env``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .deadline import DEFAULT_DEADLINE_S
from .errors import InvalidParams, NotSupported
from .home import ensure_home
from .issuers import DEFAULT_ISSUER, LIVE_KEY_PREFIXES, REGISTRY, issuer_info
from .issuers.base import Mode

__all__ = ["DEFAULT_CONSOLE_URL", "LIVE_KEY_PREFIXES", "IssuerName", "Settings", "load_settings"]

# An AGENTCARD_ISSUER value: a name in the issuer registry (issuers/__init__.py).
IssuerName = str

# Where `agentcard-mcp console` listens unless told otherwise.
DEFAULT_CONSOLE_URL = "http://127.0.0.1:8766"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTCARD_", env_file=".env", extra="ignore")

    issuer: IssuerName = Field(
        default=DEFAULT_ISSUER,
        description=f"Card issuer, one of {', '.join(REGISTRY)}; the embedded sandbox by default.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="The issuer API key (remote issuers)."
    )
    base_url: str | None = Field(default=None, description="The issuer API's base URL.")
    agent_id: str | None = Field(default=None, description="The issuer agent new cards belong to.")
    policy_file: Path | None = Field(default=None, description="The operator's policy (TOML).")
    home: Path = Field(
        default_factory=lambda: Path.home() / ".agentcard-mcp",
        description="Where the sandbox database, its key file and other state live.",
    )
    live: bool = Field(default=False, description="Exactly 1 allows live (real-money) issuer keys.")
    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL for the server's own state (postgresql://…), shared by "
        "replicas; default: SQLite files in the home.",
    )
    approval_webhook: SecretStr | None = Field(
        default=None,
        description="An http(s) URL that receives a JSON notice of each new pending approval.",
    )
    console_url: str = Field(
        default=DEFAULT_CONSOLE_URL,
        description="The operator console's URL, for the approval links the server gives out.",
    )
    call_deadline_s: float = Field(
        default=DEFAULT_DEADLINE_S,
        gt=0,
        le=100,  # below the budget's 120 s lease: a live call always settles before it ends
        description="How long one tool call may take, the issuer's retries included; after "
        "it the agent is told what may have happened.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Logging on stderr; DEBUG adds the SDK's and httpx's records."
    )

    @field_validator("issuer", mode="before")
    @classmethod
    def _known_issuer(cls, value: Any) -> Any:
        if value not in REGISTRY:
            raise ValueError(f"must be one of {', '.join(REGISTRY)}")
        return value

    @field_validator("live", mode="before")
    @classmethod
    def _exactly_one(cls, value: Any) -> Any:
        # Real money is opted into by exactly "1": "true", "yes" or "on" are refused rather than
        # guessed at; unset, "" and "0" are off.
        if value is True or value == "1" or value == 1:
            return True
        if value in (False, None, "", "0", 0):
            return False
        raise ValueError("must be exactly 1 to allow live keys (or 0, or unset)")

    def ensure_home(self) -> Path:
        """The home directory, created private to this user if it does not exist yet; refused
        (``home.UnsafeHome``) if another user could change it or the files in it."""
        return ensure_home(self.home)

    @property
    def sandbox_db(self) -> Path:
        return self.home / "sandbox.db"

    def database_url_text(self) -> str | None:
        """The PostgreSQL URL, or None for the SQLite default. Another scheme is refused."""
        if self.database_url is None or not self.database_url.get_secret_value().strip():
            return None
        url = self.database_url.get_secret_value().strip()
        if not url.startswith(("postgresql://", "postgres://")):
            raise InvalidParams(
                "AGENTCARD_DATABASE_URL must be a postgresql:// URL (or unset for SQLite files "
                "in the home)."
            )
        return url

    def approval_webhook_url(self) -> str | None:
        """The approval webhook's URL, or None when unset. Anything but an http(s) URL with a
        host is refused, naming the variable and never the value (its query may be a secret)."""
        if self.approval_webhook is None or not self.approval_webhook.get_secret_value().strip():
            return None
        url = self.approval_webhook.get_secret_value().strip()
        try:
            parsed = urlsplit(url)
            ok = parsed.scheme in ("http", "https") and bool(parsed.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise InvalidParams(
                "AGENTCARD_APPROVAL_WEBHOOK must be an http:// or https:// URL with a host "
                "(or unset for no notices)."
            )
        return url

    def is_embedded(self) -> bool:
        """The configured issuer runs in this process (the sandbox), needing no key."""
        return issuer_info(self.issuer).embedded

    def key_mode(self) -> Mode:
        """``test`` for a key the configured issuer documents as a test key (and the embedded
        sandbox), ``live`` for anything else: a key that may move real money."""
        info = issuer_info(self.issuer)
        if info.embedded:
            return "test"
        key = self.api_key.get_secret_value() if self.api_key else ""
        return info.key_mode(key, LIVE_KEY_PREFIXES)

    def is_live_key(self) -> bool:
        return self.key_mode() == "live"

    def check(self) -> None:
        """Refuses configurations that must not start: a live key without AGENTCARD_LIVE=1, a
        remote issuer without a key, an issuer this version cannot talk to yet."""
        info = issuer_info(self.issuer)
        if info.adapter is None:
            available = ", ".join(n for n, i in REGISTRY.items() if i.adapter is not None)
            raise NotSupported(
                f"issuer {self.issuer!r} is not available in this version; use "
                f"AGENTCARD_ISSUER={available.replace(', ', ' or ')}."
            )
        if info.embedded:
            return
        if self.api_key is None:
            raise InvalidParams(
                f"AGENTCARD_API_KEY is required for AGENTCARD_ISSUER={self.issuer}."
            )
        if self.is_live_key() and not self.live:
            tests = " or ".join(info.test_key_prefixes)
            test_keys = f"its test keys start {tests}" if tests else "it has no test keys"
            raise InvalidParams(
                f"AGENTCARD_API_KEY is a live key for {self.issuer} (real money; {test_keys}); "
                "set AGENTCARD_LIVE=1 to use it."
            )

    def issuer_base_url(self) -> str:
        """The issuer API's root. Every adapter adds the version (``/v1/…``) itself, so a base
        URL given with it, as issuers' docs often print it, is taken without it."""
        url = self.base_url or issuer_info(self.issuer).default_base_url or ""
        trimmed = url.rstrip("/")
        return trimmed.removesuffix("/v1") if trimmed.endswith("/v1") else url


def load_settings() -> Settings:
    """Settings from the environment and ``.env``; a bad value is ``invalid_params`` naming the
    variable — never echoing the value, which may be a key."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [
            f"AGENTCARD_{'_'.join(str(p) for p in error['loc']).upper()}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidParams("; ".join(problems)) from None
