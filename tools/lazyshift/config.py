"""Configuration: defaults < config file (TOML) < environment (LAZYSHIFT_*) < flags.

`lazyshift dev up` writes a config file with generated passwords into its state folder; the
CLI picks it up by default so a newcomer never has to type a password.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from lazyshift.errors import UsageError

DEFAULT_STATE_DIR = Path(".state/dev")
CONFIG_FILE_NAME = "lazyshift.toml"
# The one place the default ports are written down (the dev stack, the roles' defaults and
# inventories read them from here or document the same numbers).
MYSQL_PORT = 3306
MONGO_PORT = 27017
SOURCE_PORT = 8282
HTTP_PORT = 8380


class ConfigError(UsageError):
    """The configuration (file, environment, flags) cannot be used as it is."""


class _Section(BaseModel):
    # A typo (`pasword`, `[clinet]`) is an error, never a setting silently ignored.
    model_config = ConfigDict(extra="forbid")


class MySQLSettings(_Section):
    host: str = "127.0.0.1"
    port: int = MYSQL_PORT
    database: str = "lazyshift"
    user: str = "lazyshift_app"
    password: str = ""
    # DDL (schema migrate) uses a separate account so the app user can stay DML-only.
    migrate_user: str = "lazyshift_migrate"
    migrate_password: str = ""


class MongoSettings(_Section):
    uri: str = f"mongodb://127.0.0.1:{MONGO_PORT}/"
    database: str = "lazyshift"
    collection: str = "shipments"


class SourceSettings(_Section):
    host: str = "127.0.0.1"
    port: int = SOURCE_PORT


class ClientSettings(_Section):
    # `mongo`: stage 1, the mode comes from here and no MySQL is used. `control`: from
    # stage 2 on, follow the mode in MySQL's control table.
    mode: Literal["mongo", "control"] = "mongo"
    http_port: int = HTTP_PORT
    http_host: str = "127.0.0.1"
    # Fraction of reads in `dual` that are also read from MySQL and compared.
    shadow_read_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    # A client whose heartbeat is older than this is fenced out of transitions.
    heartbeat_timeout_s: float = 5.0
    poll_interval_s: float = 0.2


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LAZYSHIFT_", env_nested_delimiter="__", extra="forbid"
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
    """Settings from file and environment, with `overrides` (from flags) on top; ConfigError
    naming the file, variable or key when something cannot be used."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {_config_file()} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(config)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(
            f"configuration rejected: {problems}",
            hint="check the config file (--config / LAZYSHIFT_CONFIG), the "
            "LAZYSHIFT_* variables and the flags",
        ) from exc


def as_environment(settings: Settings) -> dict[str, str]:
    """`settings` as LAZYSHIFT_* variables: how one process hands its exact configuration to
    another (a client it starts, a backfill worker), whatever config file that one finds."""
    env = {"LAZYSHIFT_STATE_DIR": str(settings.state_dir)}
    for section in ("mysql", "mongo", "source", "client"):
        for name, value in getattr(settings, section).model_dump().items():
            env[f"LAZYSHIFT_{section.upper()}__{name.upper()}"] = str(value)
    return env
