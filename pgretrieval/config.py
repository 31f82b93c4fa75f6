"""Settings from the ``PGRETRIEVAL_*`` environment, in one object the CLI can override flag by flag."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_DATABASE = "pgretrieval"


def default_home() -> Path:
    """The user's data dir, e.g. ``~/.local/share/pgretrieval`` on Linux."""
    return Path(platformdirs.user_data_dir("pgretrieval", appauthor=False))


class Settings(BaseSettings):
    """Everything configurable from the environment. Unset ``database_url`` means: use the embedded server."""

    model_config = SettingsConfigDict(env_prefix="PGRETRIEVAL_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="PostgreSQL DSN/URL. Unset: start and use the embedded server."
    )
    home: Path = Field(default_factory=default_home, description="Where the embedded server keeps its data.")
    port: int | None = Field(default=None, description="TCP port of the embedded server (chosen on first start).")
    embed_model: str = Field(default=DEFAULT_EMBED_MODEL, description="Embedding model name or local path.")
    rerank_model: str | None = Field(default=None, description="Cross-encoder model name or local path.")
    embed_batch_size: int = Field(default=64, ge=1, le=4096)
    device: str | None = Field(default=None, description="torch device for models (cpu, cuda, ...).")

    @field_validator("database_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return Path(value).expanduser()

    @field_validator("port")
    @classmethod
    def _check_port(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 65535:
            raise ValueError("port must be between 1 and 65535")
        return value

    @property
    def uses_embedded_server(self) -> bool:
        return self.database_url is None


def load_settings(**overrides: object) -> Settings:
    """Read the environment, then apply non-None overrides (CLI flags win over the environment)."""
    from pydantic import ValidationError

    from pgretrieval.errors import ConfigurationError

    values = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ConfigurationError(
            f"invalid setting PGRETRIEVAL_{field.upper()}: {first['msg']} (got {first.get('input')!r})"
        ) from None
