"""One router per feature; :data:`ROUTERS` is the order the application includes them in."""

from __future__ import annotations

from fastapi import APIRouter

from courseinfra.entrypoints.api.routers import (
    audit,
    batches,
    cache,
    content,
    enrolments,
    events,
    failed_events,
    groups,
    openedx,
    operations,
    reports,
    sync,
    tokens,
    trail,
    users,
)

ROUTERS: tuple[APIRouter, ...] = (
    content.router,
    events.router,
    openedx.router,
    cache.router,
    failed_events.router,
    batches.router,
    enrolments.router,
    audit.router,
    reports.router,
    users.router,
    groups.router,
    sync.router,
    tokens.router,
    trail.router,
    operations.router,
)
