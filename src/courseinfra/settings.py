"""Settings, from environment variables prefixed ``COURSEINFRA_``.

Nothing here connects: :mod:`courseinfra.bootstrap` builds the adapters from these values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from courseinfra.domain.cache_layout import CacheLayout

ENV_PREFIX = "COURSEINFRA_"
DEFAULT_HOME = Path(".courseinfra")


class SettingsError(Exception):
    """A setting is invalid; the message is one line and names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    home: Path = Field(DEFAULT_HOME, description="Folder of the embedded database and cache files.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; unset: a SQLite file under COURSEINFRA_HOME."
    )
    redis_url: str | None = Field(None, description="Redis URL; unset: the embedded cache file.")
    redis_namespace: str = Field("courseinfra", description="Prefix of the cache's own bookkeeping keys.")
    cache_layout: CacheLayout = Field(
        CacheLayout.NATIVE, description="native, or sunbird (root-prefixed keys)."
    )
    auto_migrate: bool = Field(True, description="Apply pending schema migrations at start.")
    aggregator_auto_enrol: bool = Field(
        False,
        description="Enrol a learner whose progress arrives before the enrolment, when the batch exists.",
    )
    sqlite_busy_timeout: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds a SQLite writer waits for the write lock before its unit of work is retried.",
    )
    sqlite_cache_mb: int = Field(256, ge=1, le=65536, description="SQLite page cache per connection, in MiB.")
    sqlite_mmap_mb: int = Field(
        1024, ge=0, le=1 << 20, description="SQLite memory map per connection, in MiB."
    )
    sqlite_wal_autocheckpoint: int = Field(
        10_000, ge=0, le=10_000_000, description="WAL pages written before SQLite checkpoints (0: never)."
    )
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL"] = Field(
        "NORMAL",
        description="How often SQLite syncs the file (NORMAL in WAL mode: only a power loss can lose a commit).",
    )
    outbox_retention_days: float = Field(
        7.0, ge=0, le=36500, description="Days relayed outbox messages are kept (0: kept forever)."
    )
    audit_retention_days: float = Field(
        30.0,
        ge=0,
        le=36500,
        description="Days relayed AUDIT events stay listable (0: kept forever); pruning never re-emits one.",
    )
    counter_sample_seconds: float = Field(
        10.0,
        ge=1,
        le=3600,
        description="Seconds between two samples of the job counters (events per second over time, ADR "
        "0025): after a commit that counts, a process samples when the last sample is this old.",
    )
    counter_sample_retention_hours: float = Field(
        24.0, gt=0, le=24 * 366, description="Hours the samples of the job counters are kept."
    )
    ingest_max_line_bytes: int = Field(
        1 << 20,
        ge=1024,
        le=1 << 30,
        description="The longest line ingest reads as an event; a longer one is kept, cut short, as a failure.",
    )
    ingest_chunk_size: int = Field(1000, ge=1, le=100_000, description="Events read and processed at a time.")
    reports_dir: Path | None = Field(
        None, description="Folder of course reports; unset: COURSEINFRA_HOME/reports."
    )
    reports_accepted_frameworks: Annotated[tuple[str, ...], NoDecode] = Field(
        ("TPD",),
        description="Frameworks whose courses' batches get reports: a JSON list or comma-separated names, "
        "matched exactly after trimming and case folding.",
    )
    reports_mask_personal_data: bool = Field(False, description="Mask learners' names and emails in reports.")
    metrics_public: bool = Field(
        False, description="Serve /metrics without a token (for a scraper on a private network)."
    )
    legacy_backend: Literal["local", "openedx"] = Field(
        "local", description="Legacy groups: the local tables, or an Open edX instance over its REST APIs."
    )
    openedx_url: str | None = Field(
        None, description="Base URL of the Open edX LMS (legacy_backend openedx)."
    )
    openedx_token: str | None = Field(None, description="OAuth2 bearer token of a staff service user.")
    openedx_bus: Literal["embedded", "redis"] = Field(
        "embedded",
        description="Where `openedx consume` reads Open edX's event bus: Redis streams (as edx-event-bus-redis "
        "writes them; COURSEINFRA_OPENEDX_BUS_URL, else COURSEINFRA_REDIS_URL), or a SQLite file under "
        "COURSEINFRA_HOME with the same streams (for a machine without servers, and tests).",
    )
    openedx_bus_url: str | None = Field(None, description="Redis URL of Open edX's event bus.")
    openedx_topic_prefix: str = Field(
        "",
        description="Open edX's EVENT_BUS_TOPIC_PREFIX: a stream is <prefix>-<topic> (just <topic> when empty).",
    )
    openedx_topics: Annotated[tuple[str, ...], NoDecode] = Field(
        ("learning-cohort-membership", "learning-course-enrollment-lifecycle", "analytics-tracking-event"),
        description="The topics read (a JSON list or comma-separated names), as the LMS's "
        "EVENT_BUS_PRODUCER_CONFIG names them.",
    )
    openedx_events_retention_days: float = Field(
        7.0,
        gt=0,
        le=36500,
        description="Days the id of an applied Open edX event is remembered, so that a redelivery or a "
        "replay is skipped (longer than the bus keeps an entry pending).",
    )
    openedx_consumer_group: str = Field(
        "courseinfra", min_length=1, description="The consumer group courseinfra reads Open edX's streams in."
    )
    event_stream: Literal["off", "embedded", "redis"] = Field(
        "off",
        description="Where relayed events leave the process for downstream consumers: nowhere, a SQLite "
        "file under COURSEINFRA_HOME, or Redis streams (COURSEINFRA_REDIS_URL), one per event type.",
    )
    event_stream_max_length: int = Field(
        1_000_000, ge=1, description="Entries kept per event stream; older ones are trimmed."
    )
    jwt_issuer: str | None = Field(
        None,
        description="Accept OAuth2 JWTs from this issuer (the LMS's JWT_ISSUER, e.g. https://lms/oauth2); "
        "unset: only courseinfra's own tokens.",
    )
    jwt_audience: str | None = Field(None, description="The audience a JWT must name (JWT_AUDIENCE).")
    jwt_secret: SecretStr | None = Field(
        None, description="The shared key of HS256 JWTs (JWT_SECRET_KEY); unset: HS256 is refused."
    )
    jwt_public_keys: str | None = Field(
        None,
        description="A JWK set (JSON) of the keys that sign RS256/ES256 JWTs (JWT_PUBLIC_SIGNING_JWK_SET).",
    )
    jwt_jwks_url: str | None = Field(
        None, description="Where to fetch that JWK set instead (the LMS's /oauth2/jwks.json)."
    )
    jwt_leeway_seconds: int = Field(
        30, ge=0, le=600, description="Clock skew allowed on a JWT's exp, nbf and iat."
    )
    max_hierarchy_depth: int = Field(
        100,
        ge=1,
        le=100,
        description="Levels of collections a stored hierarchy may have below its root (422 "
        "invalid-hierarchy beyond; 100 at most, what the JSON encoders nest).",
    )
    max_body_bytes: int = Field(
        32 << 20,
        ge=1024,
        le=1 << 31,
        description="The largest request body the API reads (413 beyond it); event posts and imports "
        "included.",
    )
    legacy_delete_policy: Literal["restrict", "detach", "archive"] = Field(
        "restrict",
        description="Deleting a user group linked to a cohort or a track (which cannot be deleted): refuse, "
        "delete the user group only, or keep both with the user group disabled.",
    )
    legacy_echo_ttl_seconds: int = Field(
        600,
        ge=1,
        le=86_400,
        description="How long the Open edX event caused by courseinfra's own write to a legacy group is "
        "expected (an expected echo, consumed without a legacy read); past it, the event is pulled.",
    )

    @field_validator("reports_accepted_frameworks", "openedx_topics", mode="before")
    @classmethod
    def _frameworks(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return tuple(json.loads(text))
                except json.JSONDecodeError as error:
                    raise ValueError(f"not a JSON list: {error.msg}") from None
            return tuple(part for part in (item.strip() for item in text.split(",")) if part)
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if not scheme.startswith(("sqlite", "postgresql")):
            raise ValueError("expected a sqlite:/// or postgresql+psycopg:// URL")
        if scheme == "postgresql":
            # SQLAlchemy's bare postgresql:// means psycopg2, which is not installed; psycopg 3 is.
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _jwt(self) -> Settings:
        keys = (
            self.jwt_secret is not None or self.jwt_public_keys is not None or self.jwt_jwks_url is not None
        )
        if keys and not (self.jwt_issuer and self.jwt_audience):
            raise ValueError("JWT keys need COURSEINFRA_JWT_ISSUER and COURSEINFRA_JWT_AUDIENCE")
        if self.jwt_issuer and not keys:
            raise ValueError(
                "COURSEINFRA_JWT_ISSUER needs a key: COURSEINFRA_JWT_SECRET, _PUBLIC_KEYS or _JWKS_URL"
            )
        if self.jwt_public_keys is not None:
            try:
                keyset = json.loads(self.jwt_public_keys)
            except json.JSONDecodeError as error:
                raise ValueError(f"COURSEINFRA_JWT_PUBLIC_KEYS is not JSON: {error.msg}") from None
            if not isinstance(keyset, dict) or not isinstance(keyset.get("keys"), list):
                raise ValueError('COURSEINFRA_JWT_PUBLIC_KEYS: expected a JWK set {"keys": [...]}')
        return self

    @property
    def jwt_enabled(self) -> bool:
        return self.jwt_issuer is not None

    @property
    def sql_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'courseinfra.sqlite3'}"

    @property
    def embedded_cache_path(self) -> Path:
        return self.home / "cache.sqlite3"

    @property
    def embedded_stream_path(self) -> Path:
        return self.home / "events.sqlite3"

    @property
    def embedded_openedx_bus_path(self) -> Path:
        return self.home / "openedx-bus.sqlite3"

    def openedx_stream(self, topic: str) -> str:
        """The stream of an Open edX topic, named as edx-event-bus-redis names it."""
        return f"{self.openedx_topic_prefix}-{topic}" if self.openedx_topic_prefix else topic

    @property
    def reports_path(self) -> Path:
        return self.reports_dir or self.home / "reports"


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise :class:`SettingsError` naming the first bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        first = error.errors()[0]
        if not first["loc"]:  # a rule across settings: its message names them
            raise SettingsError(f"invalid settings: {first['msg'].removeprefix('Value error, ')}") from None
        field = str(first["loc"][0])
        raise SettingsError(f"invalid setting {ENV_PREFIX}{field.upper()}: {first['msg']}") from None
