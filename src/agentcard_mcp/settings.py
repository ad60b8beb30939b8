"""Settings, read once at the edge from the environment (prefix ``AGENTCARD_``) or ``.env``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .deadline import DEFAULT_DEADLINE_S
from .errors import InvalidParams, NotSupported
from .home import ensure_home

__all__ = ["DEFAULT_CONSOLE_URL", "LIVE_KEY_PREFIXES", "IssuerName", "Settings", "load_settings"]

IssuerName = Literal["sandbox", "agentcard", "agentcard-sh", "clawdcards", "proxy"]

# Keys that move real money; refused unless the operator opts in with AGENTCARD_LIVE=1.
LIVE_KEY_PREFIXES = ("ac_live_", "ak_live_", "clw_live_", "lk_live_", "sk_live_", "rk_live_")

DEFAULT_BASE_URLS = {"agentcard": "https://api.agentcard.so"}
# Where `agentcard-mcp console` listens unless told otherwise.
DEFAULT_CONSOLE_URL = "http://127.0.0.1:8766"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTCARD_", env_file=".env", extra="ignore")

    issuer: IssuerName = Field(
        default="sandbox", description="Card issuer; the embedded sandbox by default."
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
    live: bool = Field(default=False, description="Allow live (real-money) issuer keys.")
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

    def is_live_key(self) -> bool:
        key = self.api_key.get_secret_value() if self.api_key else ""
        return key.startswith(LIVE_KEY_PREFIXES)

    def check(self) -> None:
        """Refuses configurations that must not start: a live key without AGENTCARD_LIVE=1, a
        remote issuer without a key, an issuer this version cannot talk to yet."""
        if self.issuer == "sandbox":
            return
        if self.issuer != "agentcard":
            raise NotSupported(f"issuer {self.issuer!r} is not available in this version; "
                               "use AGENTCARD_ISSUER=sandbox or agentcard.")  # fmt: skip
        if self.api_key is None:
            raise InvalidParams(
                f"AGENTCARD_API_KEY is required for AGENTCARD_ISSUER={self.issuer}."
            )
        if self.is_live_key() and not self.live:
            raise InvalidParams(
                "AGENTCARD_API_KEY is a live key (real money); set AGENTCARD_LIVE=1 to use it."
            )

    def issuer_base_url(self) -> str:
        return self.base_url or DEFAULT_BASE_URLS.get(self.issuer, "")


def load_settings() -> Settings:
    """Settings from the environment and ``.env``; a bad value is ``invalid_params`` naming the
    variable — never echoing the value, which may be a key."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [
            f"AGENTCARD_{'_'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidParams("; ".join(problems)) from None
