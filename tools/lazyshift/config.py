"""Configuration: defaults < config file (TOML) < environment (LAZYSHIFT_*) < flags.

`lazyshift dev up` writes a config file with generated passwords into its state folder; the
CLI picks it up by default so a newcomer never has to type a password.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_STATE_DIR = Path(".state/dev")
CONFIG_FILE_NAME = "lazyshift.toml"


class MySQLSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 3306
    database: str = "lazyshift"
    user: str = "lazyshift_app"
    password: str = ""
    # DDL (schema migrate) uses a separate account so the app user can stay DML-only.
    migrate_user: str = "lazyshift_migrate"
    migrate_password: str = ""


class MongoSettings(BaseModel):
    uri: str = "mongodb://127.0.0.1:27017/"
    database: str = "lazyshift"
    collection: str = "shipments"


class SourceSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8282


class ClientSettings(BaseModel):
    # `mongo`: stage 1, the mode comes from here and no MySQL is used. `control`: from
    # stage 2 on, follow the mode in MySQL's control table.
    mode: Literal["mongo", "control"] = "mongo"
    http_port: int = 8380
    http_host: str = "127.0.0.1"
    # Fraction of reads in `dual` that are also read from MySQL and compared.
    shadow_read_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    # A client whose heartbeat is older than this is fenced out of transitions.
    heartbeat_timeout_s: float = 5.0
    poll_interval_s: float = 0.2


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LAZYSHIFT_", env_nested_delimiter="__", extra="ignore"
    )

    mysql: MySQLSettings = MySQLSettings()
    mongo: MongoSettings = MongoSettings()
    source: SourceSettings = SourceSettings()
    client: ClientSettings = ClientSettings()
    state_dir: Path = DEFAULT_STATE_DIR

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def _config_file() -> Path | None:
    explicit = os.environ.get("LAZYSHIFT_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(
                f"config file {path} (from --config / LAZYSHIFT_CONFIG) does not exist"
            )
        return path
    state_dir = Path(os.environ.get("LAZYSHIFT_STATE_DIR", DEFAULT_STATE_DIR))
    candidate = state_dir / CONFIG_FILE_NAME
    return candidate if candidate.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Settings from file and environment, with `overrides` (from flags) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def as_environment(settings: Settings) -> dict[str, str]:
    """`settings` as LAZYSHIFT_* variables: how one process hands its exact configuration to
    another (a client it starts, a backfill worker), whatever config file that one finds."""
    env = {"LAZYSHIFT_STATE_DIR": str(settings.state_dir)}
    for section in ("mysql", "mongo", "source", "client"):
        for name, value in getattr(settings, section).model_dump().items():
            env[f"LAZYSHIFT_{section.upper()}__{name.upper()}"] = str(value)
    return env
