"""Settings, read once at the edge from the environment (prefix ``AGENTCARD_``) or ``.env``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTCARD_", env_file=".env", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".agentcard-mcp",
        description="Where the sandbox database, its key file and other state live.",
    )

    def ensure_home(self) -> Path:
        """The home directory, created private to this user if it does not exist yet."""
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.home

    @property
    def sandbox_db(self) -> Path:
        return self.home / "sandbox.db"
