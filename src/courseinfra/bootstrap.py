"""The one place that builds adapters from settings and wires them into the services.

Importing this module connects to nothing; :func:`bootstrap` does, when it is called.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from courseinfra.adapters.bus import InProcessBus
from courseinfra.adapters.cache.redis import RedisRelationCache
from courseinfra.adapters.cache.sqlite import SqliteRelationCache
from courseinfra.adapters.legacy.local import LocalLegacyGroups
from courseinfra.adapters.locks import FileLocks, PostgresLocks
from courseinfra.adapters.openedx_bus.envelopes import EnvelopeReader
from courseinfra.adapters.report_files import LocalReportArchive
from courseinfra.adapters.sql.criteria import CriteriaCompiler
from courseinfra.adapters.sql.engine import SqliteTuning, create_engine, migrate
from courseinfra.adapters.sql.uow import LegacyBinding, SqlUnitOfWork
from courseinfra.adapters.streams import RedisEventStream, SqliteEventStream
from courseinfra.domain.criteria import SHIPPED_TYPES, CriteriaRegistry, CriterionType
from courseinfra.domain.events import ContentPublished, RelationCacheUpdated
from courseinfra.domain.legacy import LEGACY_TYPES
from courseinfra.domain.openedx_events import OpenedxMessage
from courseinfra.domain.reports import AcceptedFrameworks
from courseinfra.services.access.ports import JwtVerifier
from courseinfra.services.cache import RelationCacheJob
from courseinfra.services.cache.ports import RelationCache
from courseinfra.services.course_metrics import CourseMetricsJob, CourseViews, relation_cache_updated_handler
from courseinfra.services.events.ingest import Router
from courseinfra.services.events.ports import EventBus, EventStream
from courseinfra.services.groups import GROUP_TRIGGERS, DeletePolicy, UserGroups, group_refresh_handler
from courseinfra.services.messagebus import Publication, post_publish_handler, relay_audit_log, relay_outbox
from courseinfra.services.monitoring import CounterSampler
from courseinfra.services.openedx.intake import Applied, OpenedxEventsJob
from courseinfra.services.reports import ReportOptions
from courseinfra.services.reports.ports import ReportArchive
from courseinfra.services.sync.ports import LegacyGroups
from courseinfra.services.unit_of_work import Locks, UnitOfWork
from courseinfra.settings import Settings, SettingsError, load_settings


@dataclass
class App:
    """The wired application: what entry points use, and what they close when they are done."""

    settings: Settings
    engine: sa.Engine
    cache: RelationCache
    bus: EventBus
    router: Router
    uow_factory: Callable[[], UnitOfWork] = field(repr=False)
    reports: ReportArchive = field(repr=False)
    registry: CriteriaRegistry = field(repr=False)
    legacy: LegacyGroups = field(repr=False)
    groups: UserGroups = field(repr=False)
    views: CourseViews = field(repr=False)
    locks: Locks = field(repr=False)
    stream: EventStream | None = field(default=None, repr=False)
    publication: Publication = field(default_factory=Publication, repr=False)
    #: Verifies the OAuth2 provider's JWTs; None: only courseinfra's own tokens are accepted.
    jwt: JwtVerifier | None = field(default=None, repr=False)
    #: Samples the job counters after counting commits (ADR 0025).
    sampler: CounterSampler | None = field(default=None, repr=False)

    @property
    def report_options(self) -> ReportOptions:
        return ReportOptions(
            AcceptedFrameworks.of(self.settings.reports_accepted_frameworks),
            mask_personal_data=self.settings.reports_mask_personal_data,
        )

    def report_archive(self, folder: Path | None = None) -> ReportArchive:
        """The reports folder of the settings, or another one (``reports generate --out``)."""
        return self.reports if folder is None else LocalReportArchive(folder)

    def relay(self) -> int:
        """Deliver committed outbox events and AUDIT events to their handlers and the event stream;
        return how many were delivered. Every commit that writes events does it already (ADR 0019):
        call it only where nothing commits (a process relaying beside ``ingest --workers``), or to drain
        what a failed relay left. Within a relay (a handler's commit) it does nothing."""
        with self.publication.relaying() as first:
            return self._relay() if first else 0

    def _relay(self) -> int:
        days = self.settings.outbox_retention_days
        audit_days = self.settings.audit_retention_days
        return relay_outbox(
            self.uow_factory,
            self.bus,
            locks=self.locks,
            stream=self.stream,
            retention=timedelta(days=days) if days else None,
        ) + relay_audit_log(
            self.uow_factory,
            self.bus,
            locks=self.locks,
            stream=self.stream,
            retention=timedelta(days=audit_days) if audit_days else None,
        )

    def close(self) -> None:
        self.locks.close()
        self.legacy.close()
        self.cache.close()
        if self.stream is not None:
            self.stream.close()
        self.engine.dispose()


def build_legacy(settings: Settings, engine: sa.Engine) -> tuple[LegacyGroups, LegacyBinding | None]:
    """The legacy groups, and what a unit of work hands out as ``uow.legacy``: the local tables (bound
    to the unit of work's connection, the default), or an Open edX instance (its URL and token are
    required), the same client for every unit of work."""
    if settings.legacy_backend == "openedx":
        if not settings.openedx_url or not settings.openedx_token:
            raise SettingsError(
                "COURSEINFRA_LEGACY_BACKEND=openedx needs COURSEINFRA_OPENEDX_URL and COURSEINFRA_OPENEDX_TOKEN"
            )
        from courseinfra.adapters.legacy.openedx import OpenEdxLegacyGroups  # only where configured

        client = OpenEdxLegacyGroups(settings.openedx_url, settings.openedx_token)
        return client, lambda _connection: client
    return LocalLegacyGroups(engine), None


def build_jwt(settings: Settings) -> JwtVerifier | None:
    if settings.jwt_issuer is None or settings.jwt_audience is None:
        return None
    from courseinfra.adapters.jwt_tokens import PyJwtVerifier  # PyJWT and cryptography: only if used

    return PyJwtVerifier(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        secret=None if settings.jwt_secret is None else settings.jwt_secret.get_secret_value(),
        public_keys=settings.jwt_public_keys,
        jwks_url=settings.jwt_jwks_url,
        leeway_seconds=settings.jwt_leeway_seconds,
    )


def build_stream(settings: Settings) -> EventStream | None:
    """The event stream the settings name, or None (``COURSEINFRA_EVENT_STREAM=off``)."""
    if settings.event_stream == "redis":
        if not settings.redis_url:
            raise SettingsError("COURSEINFRA_EVENT_STREAM=redis needs COURSEINFRA_REDIS_URL")
        return RedisEventStream.from_url(
            settings.redis_url, settings.event_stream_max_length, f"{settings.redis_namespace}:events"
        )
    if settings.event_stream == "embedded":
        return SqliteEventStream(settings.embedded_stream_path, settings.event_stream_max_length)
    return None


def sqlite_tuning(settings: Settings) -> SqliteTuning:
    return SqliteTuning(
        busy_timeout=settings.sqlite_busy_timeout,
        cache_mb=settings.sqlite_cache_mb,
        mmap_mb=settings.sqlite_mmap_mb,
        wal_autocheckpoint=settings.sqlite_wal_autocheckpoint,
        synchronous=settings.sqlite_synchronous,
    )


def build_locks(settings: Settings, engine: sa.Engine) -> Locks:
    """Advisory locks of PostgreSQL, or file locks beside the SQLite database (in the home for one in
    memory)."""
    if engine.dialect.name == "postgresql":
        return PostgresLocks(engine)
    database = engine.url.database
    if database and database != ":memory:":
        return FileLocks(Path(f"{database}.locks"))
    return FileLocks(settings.home / "locks")


def build_cache(settings: Settings) -> RelationCache:
    if settings.redis_url:
        return RedisRelationCache.from_url(settings.redis_url, settings.redis_namespace)
    return SqliteRelationCache(settings.embedded_cache_path)


CRITERIA_ENTRY_POINTS = "courseinfra.criteria"


def build_criteria() -> tuple[CriteriaRegistry, CriteriaCompiler]:
    """The shipped criterion types plus those of installed plugins: each entry point of the
    ``courseinfra.criteria`` group names a :class:`CriterionType` subclass; one with a ``compile_sql``
    static method (criterion, context, dialect -> predicate over ``users``) is also evaluated in SQL,
    the others in Python over the candidates."""
    registry, compiler = CriteriaRegistry((*SHIPPED_TYPES, *LEGACY_TYPES)), CriteriaCompiler()
    for entry_point in importlib.metadata.entry_points(group=CRITERIA_ENTRY_POINTS):
        loaded = entry_point.load()
        criterion_type = loaded() if isinstance(loaded, type) else loaded
        if not isinstance(criterion_type, CriterionType):
            raise TypeError(
                f"entry point {entry_point.name} of {CRITERIA_ENTRY_POINTS} is not a CriterionType"
            )
        registry.register(criterion_type)
        sql = getattr(criterion_type, "compile_sql", None)
        if callable(sql):
            compiler.register(criterion_type.name, sql)
    return registry, compiler


def bootstrap(
    settings: Settings | None = None,
    *,
    cache: RelationCache | None = None,
    bus: EventBus | None = None,
    publish_on_commit: bool = True,
) -> App:
    """Build the application. ``cache`` and ``bus`` replace the ones the settings name (for tests).
    ``publish_on_commit=False``: commits relay nothing, someone else relays (``ingest --workers``
    processes, a benchmark that times the relay apart)."""
    settings = settings or load_settings()
    engine = create_engine(settings.sql_url, sqlite=sqlite_tuning(settings))
    if settings.auto_migrate:
        migrate(engine)
    cache = cache or build_cache(settings)
    bus = bus or InProcessBus()

    registry, compiler = build_criteria()

    publication = Publication()
    legacy, legacy_binding = build_legacy(settings, engine)

    def uow_factory() -> UnitOfWork:
        return SqlUnitOfWork(
            engine,
            registry,
            compiler,
            on_publish=publication.committed,
            legacy=legacy_binding,
            on_count=sampler.counted,
        )

    sampler = CounterSampler(
        uow_factory,
        timedelta(seconds=settings.counter_sample_seconds),
        timedelta(hours=settings.counter_sample_retention_hours),
    )

    views = CourseViews(cache, settings.cache_layout, uow_factory)
    user_groups = UserGroups(
        uow_factory,
        registry,
        DeletePolicy(settings.legacy_delete_policy),
        echo_ttl=timedelta(seconds=settings.legacy_echo_ttl_seconds),
    )

    def apply_openedx(messages: Sequence[OpenedxMessage]) -> Applied:
        done = user_groups.apply_legacy_batch([m.event for m in messages])
        return Applied(done.links, done.echoes)

    router = Router(
        [
            RelationCacheJob(uow_factory, cache, settings.cache_layout),
            CourseMetricsJob(uow_factory, views, auto_enrol=settings.aggregator_auto_enrol),
            OpenedxEventsJob(
                uow_factory,
                EnvelopeReader(),
                apply_openedx,
                retention=timedelta(days=settings.openedx_events_retention_days),
            ),
        ]
    )
    bus.subscribe(ContentPublished.event_type, post_publish_handler(router, uow_factory))
    bus.subscribe(RelationCacheUpdated.event_type, relation_cache_updated_handler(router, uow_factory, views))
    refresh_groups = group_refresh_handler(uow_factory, registry)
    for event_type in GROUP_TRIGGERS:
        bus.subscribe(event_type, refresh_groups)
    app = App(
        settings,
        engine,
        cache,
        bus,
        router,
        uow_factory,
        LocalReportArchive(settings.reports_path),
        registry,
        legacy,
        user_groups,
        views,
        build_locks(settings, engine),
        build_stream(settings),
        publication,
        build_jwt(settings),
        sampler,
    )
    if publish_on_commit:
        publication.relay = app.relay
    return app
