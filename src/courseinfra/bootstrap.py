"""The one place that builds adapters from settings and wires them into the services.

Importing this module connects to nothing; :func:`bootstrap` does, when it is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from courseinfra.adapters.bus import InProcessBus
from courseinfra.adapters.cache.redis import RedisRelationCache
from courseinfra.adapters.cache.sqlite import SqliteRelationCache
from courseinfra.adapters.report_files import LocalReportArchive
from courseinfra.adapters.sql.engine import create_engine, migrate
from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.domain.events import ContentPublished, RelationCacheUpdated
from courseinfra.domain.reports import AcceptedFrameworks
from courseinfra.services.course_metrics import CourseMetricsJob, CourseViews, relation_cache_updated_handler
from courseinfra.services.ingest import Router
from courseinfra.services.messagebus import post_publish_handler, relay_audit_ledger, relay_outbox
from courseinfra.services.ports import EventBus, RelationCache, ReportArchive, UnitOfWork
from courseinfra.services.relation_cache import RelationCacheJob
from courseinfra.services.reports import ReportOptions
from courseinfra.settings import Settings, load_settings


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
        """Deliver committed outbox events and AUDIT ledger entries to their handlers; return how many
        were delivered."""
        return relay_outbox(self.uow_factory, self.bus) + relay_audit_ledger(self.uow_factory, self.bus)

    def close(self) -> None:
        self.cache.close()
        self.engine.dispose()


def build_cache(settings: Settings) -> RelationCache:
    if settings.redis_url:
        return RedisRelationCache.from_url(settings.redis_url, settings.redis_namespace)
    return SqliteRelationCache(settings.embedded_cache_path)


def bootstrap(
    settings: Settings | None = None,
    *,
    cache: RelationCache | None = None,
    bus: EventBus | None = None,
) -> App:
    """Build the application. ``cache`` and ``bus`` replace the ones the settings name (for tests)."""
    settings = settings or load_settings()
    engine = create_engine(settings.sql_url)
    if settings.auto_migrate:
        migrate(engine)
    cache = cache or build_cache(settings)
    bus = bus or InProcessBus()

    def uow_factory() -> UnitOfWork:
        return SqlUnitOfWork(engine)

    views = CourseViews(cache, settings.cache_layout, uow_factory)
    router = Router(
        [
            RelationCacheJob(uow_factory, cache, settings.cache_layout),
            CourseMetricsJob(uow_factory, views, auto_enrol=settings.aggregator_auto_enrol),
        ]
    )
    bus.subscribe(ContentPublished.event_type, post_publish_handler(router, uow_factory))
    bus.subscribe(RelationCacheUpdated.event_type, relation_cache_updated_handler(router, uow_factory, views))
    return App(settings, engine, cache, bus, router, uow_factory, LocalReportArchive(settings.reports_path))
