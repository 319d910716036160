"""The REST API: the CLI's operations over HTTP, with Prometheus metrics and a health check.

Routes are thin: each reads its input, calls the same service function as the CLI and returns JSON.
Every error is ``{"error": {"code", "message"}}``; ``code`` is stable (a :class:`DomainError`'s code for
the domain's errors). Routes are synchronous because the adapters are: FastAPI runs them in its
thread pool.

``create_app()`` connects to nothing: the application is built by the lifespan, at start-up, and closed
at shutdown. ``create_app(app)`` serves an application built by the caller, who closes it.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, cast

import orjson
from fastapi import (
    APIRouter,
    BackgroundTasks,
    Body,
    Depends,
    FastAPI,
    Header,
    Path,
    Query,
    Request,
    Response,
)
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from courseinfra import __version__
from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.cache_layout import to_json_value
from courseinfra.domain.errors import DomainError
from courseinfra.domain.groups import VersionConflict
from courseinfra.domain.job_requests import Outcome
from courseinfra.domain.progress import EnrolmentKey
from courseinfra.domain.users import RecordFormat
from courseinfra.entrypoints.serialize import (
    activity_json,
    batch_json,
    criteria_types_json,
    enrolment_json,
    failed_event_json,
    group_json,
    group_summary_json,
    import_report_json,
    member_json,
    members_import_json,
    membership_change_json,
    preview_json,
    refresh_all_json,
    refresh_json,
    report_run_json,
    report_selection_json,
    row_error_json,
    stream_entry_json,
    user_json,
)
from courseinfra.services import content, course_metrics, enrolments, groups, reports, users
from courseinfra.services.ingest import BadLine, ingest, read_lines, replay_failed
from courseinfra.services.ports import CourseBatch, RefreshResult
from courseinfra.services.streams import read_stream
from courseinfra.settings import load_settings

HEALTH_PROBE_KEY = "courseinfra:healthz:probe"

#: HTTP status of each domain error code; a code not listed is a client error (422).
STATUS_BY_CODE: dict[str, int] = {
    "invalid-hierarchy": 422,
    "no-event-stream": 404,
    "invalid-stream-position": 400,
    "invalid-event": 422,
    "invalid-body": 422,
    "identifier-mismatch": 409,
    "content-not-found": 404,
    "cache-key-not-found": 404,
    "failed-event-not-found": 404,
    "batch-exists": 409,
    "batch-not-found": 404,
    "course-not-found": 404,
    "enrolment-not-found": 404,
    "enrolment-closed": 409,
    "invalid-batch": 422,
    "user-not-found": 404,
    "invalid-profile": 422,
    "report-run-not-found": 404,
    "legacy-sync-failed": 502,
    "delete-restricted": 409,
    "cohort-name-exists": 409,
    "cohort-not-found": 404,
    "team-not-found": 404,
    "teamset-not-found": 404,
    "legacy-not-deletable": 409,
    "legacy-unavailable": 502,
    "report-file-not-found": 404,
    "group-not-found": 404,
    "group-exists": 409,
    "group-frozen": 409,
    "version-conflict": 412,
    "invalid-if-match": 400,
    "invalid-criteria": 422,
    "invalid-scope": 422,
    "invalid-group": 422,
    "invalid-members-file": 422,
}
DEFAULT_ERROR_STATUS = 422


class CacheKeyNotFound(DomainError):
    code = "cache-key-not-found"


class FailedEventNotFound(DomainError):
    code = "failed-event-not-found"


class InvalidBody(DomainError):
    code = "invalid-body"


class InvalidIfMatch(DomainError):
    """An If-Match header that is not one entity tag (or ``*``)."""

    code = "invalid-if-match"


# --- response models (they document the API; routes return them or plain JSON values) ----------------


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[Any] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class StoredVersionOut(BaseModel):
    identifier: str
    version: int


class HierarchyOut(BaseModel):
    identifier: str
    version: int
    published_at: datetime | None
    hierarchy: dict[str, Any]


class PublishOut(BaseModel):
    identifier: str
    version: int
    event: dict[str, Any]
    cache_keys: int


class RejectedOut(BaseModel):
    source: str
    job: str
    outcome: str
    code: str
    reason: str


class IngestOut(BaseModel):
    jobs: dict[str, dict[str, int]]
    rejected: list[RejectedOut]


class CacheEntryOut(BaseModel):
    key: str
    value: Any


class FailedEventOut(BaseModel):
    id: int
    job: str
    outcome: str
    code: str
    reason: str
    source: str
    attempts: int
    created_at: datetime
    resolved_at: datetime | None
    payload: str


class ReplayOut(BaseModel):
    event_id: int
    resolved: bool
    code: str
    reason: str


class HealthOut(BaseModel):
    status: str
    database: str
    cache: str


Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Day = Annotated[str, Field(json_schema_extra={"format": "date"})]


class BatchIn(BaseModel):
    """A new batch; the fields are the columns of ``course_batch`` (as in :class:`BatchOut`)."""

    model_config = ConfigDict(extra="forbid")

    batchid: str = Field(min_length=1, max_length=255)
    courseid: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1)
    description: str | None = None
    startdate: date | None = None
    enddate: date | None = None
    enrollmentenddate: date | None = Field(None, description="The last day to enrol.")
    enrollmenttype: Literal["open", "invite-only"] = "open"
    mentors: list[str] = Field(default_factory=list)
    createdfor: list[str] = Field(default_factory=list, description="Organisations.")
    createdby: str | None = None


class BatchOut(BaseModel):
    batchid: str
    courseid: str
    name: str
    description: str | None
    startdate: Day | None
    enddate: Day | None
    enrollmentenddate: Day | None
    enrollmenttype: str
    status: int
    createdfor: list[str]
    mentors: list[str]
    createdby: str | None
    createddate: Timestamp


class EnrolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    addedby: str | None = Field(None, description="Who enrolled the user.")
    mode: str | None = Field(
        None, min_length=1, max_length=32, description="The enrolment's mode (track); default audit."
    )


class EnrolmentOut(BaseModel):
    """A row of ``user_enrolments``; ``datetime`` is when it was last updated."""

    userid: str
    courseid: str
    batchid: str
    active: bool
    addedby: str | None
    enrolleddate: Timestamp
    datetime: Timestamp | None
    contentstatus: dict[str, int] = Field(description="Content id to status: 0, 1 started, 2 completed.")
    lastreadcontentid: str | None
    lastreadcontentstatus: int | None
    progress: int = Field(description="Completed required leaves.")
    completionpercentage: int
    status: int = Field(description="0 not started, 1 in progress, 2 completed.")
    completedon: Timestamp | None
    certificates: list[dict[str, Any]]
    mode: str = Field(description="The enrolment's mode (track): audit, verified, ...")


class EnrolOut(EnrolmentOut):
    created: bool = Field(description="False if the user was enrolled already.")


class MetricsOut(BaseModel):
    """The ``agg`` of a ``user_activity_agg`` row (its keys are camelCase)."""

    completedCount: int
    leafNodesCount: int
    progress: int


class ActivityOut(BaseModel):
    course: MetricsOut | None = Field(description="Null until progress of the enrolment is aggregated.")
    units: dict[str, MetricsOut]


class AuditEntryOut(BaseModel):
    id: int = Field(description="The entry id: pass the last one as ``after`` for the next page.")
    emitted_at: datetime
    event: dict[str, Any] = Field(description="The AUDIT event (telemetry v3).")


class UserOut(BaseModel):
    """A user of the directory; ``updated_at`` is the last change by an import or a profile update."""

    user_id: str
    username: str | None
    email: str | None
    name: str | None
    organisation: str | None
    last_login_at: Timestamp | None
    is_staff: bool
    profile: dict[str, str]
    created_at: Timestamp
    updated_at: Timestamp


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime | None = Field(None, description="When the user logged in (default: now).")


class LoginOut(UserOut):
    recorded: bool = Field(description="False if a later login was known already (nothing changed).")


class RowErrorOut(BaseModel):
    line: int = Field(description="The file line where the row starts; in a JSON array, the item number.")
    code: str
    reason: str


class ImportOut(BaseModel):
    inserted: int
    updated: int
    unchanged: int
    errors: list[RowErrorOut] = Field(description="Empty: with a bad row, the answer is 422.")


# --- dependencies ----------------------------------------------------------------------------------


def get_app(request: Request) -> App:
    return app_of(request.app)


def app_of(api: FastAPI) -> App:
    """The :class:`App` that ``api`` serves; set by :func:`create_app` or, at start-up, by its lifespan."""
    app = getattr(api.state, "courseinfra", None)
    if app is None:
        raise RuntimeError("the application is not started (its lifespan has not run)")
    return cast(App, app)


AppDep = Annotated[App, Depends(get_app)]


async def raw_body(request: Request) -> bytes:
    return await request.body()


# --- metrics -------------------------------------------------------------------------------------------


class CountersCollector:
    """Reads the cumulative job counters and the open failed events from the database at scrape time."""

    def __init__(self, app: Callable[[], App]) -> None:
        self._app = app

    def describe(self) -> Iterable[Metric]:
        # Declared so that registering the collector does not query the database.
        return [_counters_family(), _open_failed_family()]

    def collect(self) -> Iterable[Metric]:
        app = self._app()
        with app.uow_factory() as uow:
            counters = uow.counters.all()
            open_by_job = uow.failed_events.count_open()
        family = _counters_family()
        for job, counts in sorted(counters.items()):
            for name, value in sorted(counts.items()):
                family.add_metric([job, name], value)
        yield family
        open_failed = _open_failed_family()
        for job, count in sorted(open_by_job.items()):
            open_failed.add_metric([job], count)
        yield open_failed


def _counters_family() -> CounterMetricFamily:
    return CounterMetricFamily(
        "courseinfra_job",
        "Cumulative counters of each job: events (total, success, skipped, failed) and work (cache-writes, db-reads, ...).",
        labels=["job", "counter"],
    )


def _open_failed_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "courseinfra_failed_events_open",
        "Failed events kept and not yet resolved by a replay.",
        labels=["job"],
    )


# --- routes --------------------------------------------------------------------------------------------

routes = APIRouter()

Responses = dict[int | str, dict[str, Any]]
INVALID: Responses = {422: {"model": ErrorResponse, "description": "Invalid request"}}
NOT_FOUND: Responses = {404: {"model": ErrorResponse, "description": "Not found"}}

HIERARCHY_EXAMPLE = {
    "identifier": "do_1",
    "mimeType": "application/vnd.ekstep.content-collection",
    "contentType": "Course",
    "children": [{"identifier": "do_2", "mimeType": "application/pdf"}],
}

EVENT_LINE_EXAMPLE = (
    '{"eid":"BE_JOB_REQUEST","edata":{"action":"post-publish-process","identifier":"do_1",'
    '"mimeType":"application/vnd.ekstep.content-collection"}}\n'
)

EVENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Events as JSON lines (one event a line; blank lines ignored), or a JSON array of "
        "event objects.",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}, "example": EVENT_LINE_EXAMPLE},
            "text/plain": {"schema": {"type": "string"}, "example": EVENT_LINE_EXAMPLE},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        },
    }
}


@routes.put(
    "/v1/content/{identifier}/hierarchy",
    tags=["content"],
    response_model=StoredVersionOut,
    responses={**INVALID, 409: {"model": ErrorResponse, "description": "The path names another root"}},
)
def put_hierarchy(
    app: AppDep,
    identifier: str,
    hierarchy: Annotated[dict[str, Any], Body(examples=[HIERARCHY_EXAMPLE])],
) -> StoredVersionOut:
    """Store a hierarchy as the latest version of its root (without publishing it)."""
    stored = content.put_hierarchy(hierarchy, app.uow_factory(), identifier=identifier)
    return StoredVersionOut(identifier=stored.identifier, version=stored.version)


@routes.get(
    "/v1/content/{identifier}/hierarchy",
    tags=["content"],
    response_model=HierarchyOut,
    responses={**INVALID, **NOT_FOUND},
)
def get_hierarchy(app: AppDep, identifier: str) -> HierarchyOut:
    """The stored hierarchy of a root, with its version and when it was last published."""
    with app.uow_factory() as uow:
        stored = uow.hierarchies.get(identifier)
    if stored is None:
        raise content.ContentNotFound(f"no hierarchy is stored for {identifier}")
    return HierarchyOut(
        identifier=stored.identifier,
        version=stored.version,
        published_at=stored.published_at,
        hierarchy=dict(stored.hierarchy),
    )


@routes.post(
    "/v1/content/{identifier}/publish",
    tags=["content"],
    response_model=PublishOut,
    responses={**INVALID, **NOT_FOUND},
)
def publish(app: AppDep, identifier: str) -> PublishOut:
    """Publish the stored hierarchy; its relation cache is updated before this returns."""
    event = content.publish(identifier, app.uow_factory())
    app.relay()
    return PublishOut(
        identifier=identifier,
        version=event.version,
        event=event.job_request(),
        cache_keys=len(app.cache.owned_keys(identifier)),
    )


@routes.post(
    "/v1/events", tags=["events"], response_model=IngestOut, responses=INVALID, openapi_extra=EVENTS_BODY
)
def ingest_events(app: AppDep, request: Request, body: Annotated[bytes, Depends(raw_body)]) -> Any:
    """Process events, each routed to its job and finished before this returns.

    The answer is 200 even when events were not processed: they are kept (``/v1/failed-events``) and
    listed in ``rejected``.
    """
    lines = event_lines(body, request.headers.get("content-type", ""), app.settings.ingest_max_line_bytes)
    report = ingest(lines, "api", app.router, app.uow_factory, chunk_size=app.settings.ingest_chunk_size)
    app.relay()
    return report.as_json()


def event_lines(body: bytes, content_type: str, max_line_bytes: int) -> list[str | BadLine]:
    """The body as JSON lines: a JSON array (``application/json``) gives one line per element; any other
    body is split on line feeds only, as a file is read (a JSON string may hold U+2028), and a line that
    is not UTF-8 or is too long is kept as a failure, as ingest keeps it."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise InvalidBody(f"the body is not JSON: {error}") from None
        if isinstance(parsed, dict):
            parsed = [parsed]
        if not isinstance(parsed, list):
            raise InvalidBody(f"a JSON body is an array of events or one event, not {type(parsed).__name__}")
        return [orjson.dumps(item).decode() for item in parsed]
    return list(read_lines(io.BytesIO(body), max_bytes=max_line_bytes))


@routes.get(
    "/v1/cache/{key:path}", tags=["cache"], response_model=CacheEntryOut, responses={**INVALID, **NOT_FOUND}
)
def cache_get(app: AppDep, key: str) -> CacheEntryOut:
    """One cache key: a sorted array for a set, the ordered array for a list, the document for text."""
    value = app.cache.get(key)
    if value is None:
        raise CacheKeyNotFound(f"the relation cache has no key {key}")
    return CacheEntryOut(key=key, value=to_json_value(value))


@routes.get("/v1/cache-owners/{root}", tags=["cache"], response_model=dict[str, Any], responses=INVALID)
def cache_show(app: AppDep, root: str) -> dict[str, Any]:
    """Every key the relation cache holds for a root, with its value (empty if it holds none)."""
    keys = sorted(app.cache.owned_keys(root))
    values = app.cache.get_many(keys)
    return {key: to_json_value(values[key]) for key in keys}


@routes.get(
    "/v1/failed-events", tags=["failed events"], response_model=list[FailedEventOut], responses=INVALID
)
def list_failed(
    app: AppDep,
    job: Annotated[str | None, Query(description="Only this job's events.")] = None,
    skipped: Annotated[bool, Query(description="Also skipped events.")] = False,
    resolved: Annotated[bool, Query(description="Also events replayed successfully.")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int, Query(ge=0, description="Only ids above this one (paging).")] = 0,
) -> list[dict[str, Any]]:
    """Events kept because they were not processed, oldest first."""
    outcomes = (Outcome.FAILED, Outcome.SKIPPED) if skipped else (Outcome.FAILED,)
    with app.uow_factory() as uow:
        events = uow.failed_events.list(
            job=job, outcomes=outcomes, include_resolved=resolved, limit=limit, after_id=after
        )
    return [failed_event_json(event) for event in events]


@routes.post(
    "/v1/failed-events/{id}/replay",
    tags=["failed events"],
    response_model=ReplayOut,
    responses={**INVALID, **NOT_FOUND},
)
def replay(app: AppDep, event_id: Annotated[int, Path(alias="id")]) -> ReplayOut:
    """Run a kept event through its job again; it is resolved if it is processed this time."""
    with app.uow_factory() as uow:
        event = uow.failed_events.get(event_id)
    if event is None:
        raise FailedEventNotFound(f"no failed event with id {event_id}")
    [result] = replay_failed([event], app.router, app.uow_factory)
    app.relay()
    return ReplayOut(**asdict(result))


CONFLICT: Responses = {409: {"model": ErrorResponse, "description": "Conflict"}}


@routes.post(
    "/v1/batches",
    tags=["batches"],
    status_code=201,
    response_model=BatchOut,
    responses={**INVALID, **NOT_FOUND, **CONFLICT},
)
def create_batch(app: AppDep, body: BatchIn) -> dict[str, Any]:
    """Create a batch of a course the hierarchy store knows (404 ``course-not-found``, 409 ``batch-exists``)."""
    batch = CourseBatch(
        batch_id=body.batchid,
        course_id=body.courseid,
        name=body.name,
        created_at=datetime.now(UTC),
        description=body.description,
        start_date=body.startdate,
        end_date=body.enddate,
        enrollment_end_date=body.enrollmentenddate,
        enrollment_type=body.enrollmenttype,
        created_for=tuple(body.createdfor),
        mentors=tuple(body.mentors),
        created_by=body.createdby,
    )
    return batch_json(enrolments.create_batch(batch, app.uow_factory()))


@routes.get("/v1/batches", tags=["batches"], response_model=list[BatchOut], responses=INVALID)
def list_batches(
    app: AppDep,
    course: Annotated[str | None, Query(description="Only this course's batches.")] = None,
    after: Annotated[str, Query(description="Only batch ids above this one (paging).")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Batches in batch id order."""
    with app.uow_factory() as uow:
        found = uow.batches.list(course_id=course, after=after, limit=limit)
    return [batch_json(batch) for batch in found]


@routes.get(
    "/v1/batches/{batch_id}", tags=["batches"], response_model=BatchOut, responses={**INVALID, **NOT_FOUND}
)
def get_batch(app: AppDep, batch_id: str) -> dict[str, Any]:
    """One batch."""
    with app.uow_factory() as uow:
        found = uow.batches.get(batch_id)
    if found is None:
        raise enrolments.BatchNotFound(f"batch {batch_id} does not exist")
    return batch_json(found)


@routes.put(
    "/v1/batches/{batch_id}/enrolments/{user_id}",
    tags=["enrolments"],
    response_model=EnrolOut,
    responses={
        201: {"model": EnrolOut, "description": "Enrolled"},
        **INVALID,
        **NOT_FOUND,
        **CONFLICT,
    },
)
def enrol(
    app: AppDep,
    batch_id: str,
    user_id: str,
    response: Response,
    body: Annotated[EnrolIn | None, Body()] = None,
) -> dict[str, Any]:
    """Enrol a user: 201 if the enrolment is new, 200 if it existed (re-activated if it was left, with
    its progress kept); 409 ``enrolment-closed`` after the batch's last day to enrol."""
    enrolment, created = enrolments.enrol(
        user_id,
        batch_id,
        app.uow_factory(),
        added_by=body.addedby if body else None,
        mode=body.mode if body else None,
    )
    app.relay()  # the groups that read enrolments follow at once
    response.status_code = 201 if created else 200
    return {**enrolment_json(enrolment), "created": created}


@routes.delete(
    "/v1/batches/{batch_id}/enrolments/{user_id}",
    tags=["enrolments"],
    response_model=EnrolmentOut,
    responses={**INVALID, **NOT_FOUND},
)
def unenrol(app: AppDep, batch_id: str, user_id: str) -> dict[str, Any]:
    """Mark an enrolment inactive; its progress is kept."""
    enrolment = enrolments.unenrol(user_id, batch_id, app.uow_factory())
    app.relay()
    return enrolment_json(enrolment)


@routes.get(
    "/v1/batches/{batch_id}/enrolments",
    tags=["enrolments"],
    response_model=list[EnrolmentOut],
    responses={**INVALID, **NOT_FOUND},
)
def list_participants(
    app: AppDep,
    batch_id: str,
    after: Annotated[str, Query(description="Only user ids above this one (paging).")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> list[dict[str, Any]]:
    """The enrolments of a batch, by user id."""
    with app.uow_factory() as uow:
        if uow.batches.get(batch_id) is None:
            raise enrolments.BatchNotFound(f"batch {batch_id} does not exist")
        found = uow.enrolments.list_for_batch(batch_id, after_user=after, limit=limit)
    return [enrolment_json(e) for e in found]


@routes.get(
    "/v1/users/{user_id}/enrolments",
    tags=["enrolments"],
    response_model=list[EnrolmentOut],
    responses=INVALID,
)
def list_user_enrolments(app: AppDep, user_id: str) -> list[dict[str, Any]]:
    """A user's enrolments, by course and batch (empty for an unknown user)."""
    with app.uow_factory() as uow:
        found = uow.enrolments.list_for_user(user_id)
    return [enrolment_json(e) for e in found]


@routes.get(
    "/v1/enrolments/{user_id}/{course_id}/{batch_id}",
    tags=["enrolments"],
    response_model=EnrolmentOut,
    responses={**INVALID, **NOT_FOUND},
)
def get_enrolment(app: AppDep, user_id: str, course_id: str, batch_id: str) -> dict[str, Any]:
    """One enrolment with its progress."""
    key = EnrolmentKey(user_id, course_id, batch_id)
    return enrolment_json(enrolments.get_enrolment(key, app.uow_factory()))


@routes.get(
    "/v1/enrolments/{user_id}/{course_id}/{batch_id}/activity",
    tags=["enrolments"],
    response_model=ActivityOut,
    responses={**INVALID, **NOT_FOUND},
)
def get_activity(app: AppDep, user_id: str, course_id: str, batch_id: str) -> dict[str, Any]:
    """The course's and each unit's metrics of an enrolment (``user_activity_agg``)."""
    key = EnrolmentKey(user_id, course_id, batch_id)
    enrolments.get_enrolment(key, app.uow_factory())
    return activity_json(enrolments.activity(key, app.uow_factory()))


class RecomputeIn(BaseModel):
    """Which enrolments to recompute: every batch of a course, one batch, or one learner of a batch."""

    model_config = ConfigDict(extra="forbid")

    course_id: Annotated[str | None, Field(min_length=1)] = None
    batch_id: Annotated[str | None, Field(min_length=1)] = None
    user_id: Annotated[str | None, Field(min_length=1)] = None

    @model_validator(mode="after")
    def _one_selection(self) -> RecomputeIn:
        if (self.course_id is None) == (self.batch_id is None):
            raise ValueError("give exactly one of course_id and batch_id")
        if self.user_id is not None and self.batch_id is None:
            raise ValueError("user_id needs batch_id")
        return self


class RecomputedOut(BaseModel):
    enrolments: int = Field(description="Enrolments whose progress and metrics were re-derived.")
    audit_events: int = Field(description="AUDIT events emitted that had not been emitted before.")


@routes.post(
    "/v1/enrolments/recompute",
    tags=["enrolments"],
    response_model=RecomputedOut,
    responses={**INVALID, **NOT_FOUND},
)
def recompute_enrolments(app: AppDep, selection: RecomputeIn) -> RecomputedOut:
    """Re-derive progress and metrics from the stored statuses and the course's current relation
    cache (after a cache rebuild or a fix of the rules); emit only AUDIT events not emitted before."""
    done = course_metrics.recompute_enrolments(
        app.views,
        app.uow_factory,
        course_id=selection.course_id,
        batch_id=selection.batch_id,
        user_id=selection.user_id,
    )
    app.relay()
    return RecomputedOut(enrolments=done.enrolments, audit_events=done.audit_events)


@routes.get("/v1/audit-events", tags=["audit"], response_model=list[AuditEntryOut], responses=INVALID)
def list_audit_events(
    app: AppDep,
    user: Annotated[str | None, Query(description="Only this user's events.")] = None,
    course: Annotated[str | None, Query(description="Only this course's events.")] = None,
    after: Annotated[int, Query(ge=0, description="Only entry ids above this one (paging).")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> list[dict[str, Any]]:
    """AUDIT events in the order they were emitted, each with its entry id (ids grow, with gaps)."""
    entries = enrolments.audit_events(
        app.uow_factory(), user_id=user, course_id=course, after_id=after, limit=limit
    )
    return [{"id": e.id, "emitted_at": e.emitted_at, "event": e.telemetry} for e in entries]


class StreamEntryOut(BaseModel):
    position: str = Field(
        description="The entry's position: pass the last one as ``after`` for the next page."
    )
    id: int = Field(description="The message id (outbox id; AUDIT entry id): consumers drop repeats by it.")
    key: str = Field(description="The event's key (its partition key).")
    payload: dict[str, Any] = Field(description="The event's fields (see its contract).")


@routes.get(
    "/v1/streams/{event_type}",
    tags=["events"],
    response_model=list[StreamEntryOut],
    responses={**INVALID, **NOT_FOUND},
)
def read_event_stream(
    app: AppDep,
    event_type: str,
    after: Annotated[str | None, Query(description="Only entries after this position (paging).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Relayed events of one type (``courseinfra.learning.audit.emitted.v1``, ...), oldest first, from
    the event stream the settings name (404 when there is none)."""
    entries = read_stream(app.stream, event_type, after=after, limit=limit)
    return [stream_entry_json(entry) for entry in entries]


class ReportRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: date | None = Field(None, description="The report date; default today (UTC).")
    batches: list[str] = Field(
        default_factory=list, description="Only these batches (all selected when empty)."
    )


class ReportFileNotFound(DomainError):
    code = "report-file-not-found"


REPORT_MEDIA_TYPES = {".csv": "text/csv; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml"}


@routes.get("/v1/reports/batches", tags=["reports"], responses=INVALID)
def report_batches(
    app: AppDep, as_of: Annotated[date | None, Query(description="Default today (UTC).")] = None
) -> dict[str, Any]:
    """The ongoing batches a report run would cover, and every other one with its reason."""
    with app.uow_factory() as uow:
        selection = reports.batches_to_report(
            uow, app.report_options.accepted, as_of or datetime.now(UTC).date()
        )
    return report_selection_json(selection)


@routes.post("/v1/reports/runs", tags=["reports"], status_code=202, responses=INVALID)
def start_report_run(app: AppDep, body: ReportRunIn, background: BackgroundTasks) -> dict[str, Any]:
    """Start a report run; it goes on after the answer. Follow it at ``/v1/reports/runs/{run_id}``."""
    as_of = body.as_of or datetime.now(UTC).date()
    run = reports.start_run(app.uow_factory, as_of=as_of, batch_ids=body.batches)
    background.add_task(_carry_out_report_run, app, run.run_id, as_of, tuple(body.batches))
    return report_run_json(run)


def _carry_out_report_run(app: App, run_id: str, as_of: date, batch_ids: tuple[str, ...]) -> None:
    # A failure is recorded on the run (status failed, with the error), which is where a client looks.
    with contextlib.suppress(Exception):
        reports.generate_reports(
            app.uow_factory, app.reports, app.report_options, as_of=as_of, batch_ids=batch_ids, run_id=run_id
        )


@routes.get("/v1/reports/runs", tags=["reports"], responses=INVALID)
def list_report_runs(app: AppDep, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> list[dict[str, Any]]:
    """The latest report runs, newest first."""
    return [report_run_json(run) for run in reports.list_runs(app.uow_factory, limit)]


@routes.get("/v1/reports/runs/{run_id}", tags=["reports"], responses={**INVALID, **NOT_FOUND})
def get_report_run(app: AppDep, run_id: str) -> dict[str, Any]:
    """A report run's status and progress; when it succeeded, what it reported and its files."""
    run = reports.get_run(app.uow_factory, run_id)
    return {**report_run_json(run), "files": app.reports.files(run_id)}


@routes.get("/v1/reports/runs/{run_id}/files/{name}", tags=["reports"], responses={**INVALID, **NOT_FOUND})
def download_report_file(app: AppDep, run_id: str, name: str) -> FileResponse:
    """One file of a finished run: a batch's CSV, summary (JSON) or chart (SVG), or the manifest."""
    reports.get_run(app.uow_factory, run_id)
    path = app.reports.path(run_id, name)
    if path is None:
        raise ReportFileNotFound(f"run {run_id} has no file {name}")
    return FileResponse(
        path, media_type=REPORT_MEDIA_TYPES.get(path.suffix, "application/octet-stream"), filename=name
    )


USERS_CSV_EXAMPLE = (
    "user_id,username,email,organisation,is_staff,district\nu1,ada,ada@example.org,org1,no,north\n"
)

USERS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The import file as text, its format in the ``format`` parameter (CSV with a header "
        "row, or JSON lines); or a JSON array of user objects (``application/json``).",
        "content": {
            "text/csv": {"schema": {"type": "string"}, "example": USERS_CSV_EXAMPLE},
            "text/plain": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        },
    }
}


@routes.post(
    "/v1/users/import",
    tags=["users"],
    response_model=ImportOut,
    responses={422: {"model": ErrorResponse, "description": "Bad rows (in ``details``): nothing imported"}},
    openapi_extra=USERS_BODY,
)
def import_users(
    app: AppDep,
    request: Request,
    body: Annotated[bytes, Depends(raw_body)],
    fmt: Annotated[
        RecordFormat | None,
        Query(alias="format", description="csv, json or jsonl; json when the body is application/json."),
    ] = None,
) -> Any:
    """Insert or update users, all or nothing: with any bad row, 422 ``invalid-users`` lists every bad
    row in ``details`` and nothing is imported."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if fmt is None:
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise InvalidBody("give the body's format: ?format=csv, json or jsonl")
        fmt = RecordFormat.JSON
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidBody(f"the body is not UTF-8: {error}") from None
    report = users.import_users(text, fmt, app.uow_factory)
    app.relay()
    if not report.ok:
        return error_json(
            422,
            "invalid-users",
            f"{len(report.errors)} bad row(s): nothing was imported",
            [row_error_json(error) for error in report.errors],
        )
    return import_report_json(report)


@routes.get("/v1/users", tags=["users"], response_model=list[UserOut], responses=INVALID)
def list_users(
    app: AppDep,
    organisation: Annotated[str | None, Query(description="Only this organisation's users.")] = None,
    after: Annotated[str, Query(description="Only user ids above this one (paging).")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Users in user id order."""
    with app.uow_factory() as uow:
        found = uow.users.list(after=after, limit=limit, organisation=organisation)
    return [user_json(user) for user in found]


@routes.get("/v1/users/{user_id}", tags=["users"], response_model=UserOut, responses={**INVALID, **NOT_FOUND})
def get_user(app: AppDep, user_id: str) -> dict[str, Any]:
    """One user."""
    return user_json(users.get_user(user_id, app.uow_factory()))


@routes.post(
    "/v1/users/{user_id}/logins",
    tags=["users"],
    response_model=LoginOut,
    responses={**INVALID, **NOT_FOUND},
)
def record_login(app: AppDep, user_id: str, body: Annotated[LoginIn | None, Body()] = None) -> dict[str, Any]:
    """Record a login; ``last_login_at`` only moves forward (a late report changes nothing)."""
    user, moved = users.record_login(user_id, app.uow_factory(), body.at if body else None)
    app.relay()
    return {**user_json(user), "recorded": moved}


@routes.patch(
    "/v1/users/{user_id}/profile",
    tags=["users"],
    response_model=UserOut,
    responses={**INVALID, **NOT_FOUND},
)
def update_profile(
    app: AppDep,
    user_id: str,
    fields: Annotated[
        dict[str, str | None],
        Body(
            examples=[{"district": "north", "school": None}], description="Fields to set; null removes one."
        ),
    ],
) -> dict[str, Any]:
    """Set profile fields (a merge patch: a null value removes the field); answers the user."""
    user = users.update_profile(user_id, fields, app.uow_factory())
    app.relay()
    return user_json(user)


# --- user groups ---------------------------------------------------------------------------------------

CRITERIA_EXAMPLE = {
    "and": [
        {"type": "course_enrolment", "operator": "is", "config": {"course_id": "democourse"}},
        {"not": {"type": "last_login", "operator": "within_days", "config": {"days": 30}}},
    ]
}
CriteriaTree = Annotated[
    dict[str, Any] | None,
    Field(
        description="A tree of {and: [...]}, {or: [...]}, {not: ...} over criteria {type, operator, "
        "config} (see /v1/criteria/types); null: no criteria, only the include list.",
        examples=[CRITERIA_EXAMPLE],
    ),
]
ScopeText = Annotated[
    str, Field(description="instance, organisation:<name> or course:<course id>.", examples=["instance"])
]
UserIds = Annotated[list[str], Field(description="User ids; the exclude list wins over everything.")]


class GroupDefinitionIn(BaseModel):
    """A group's whole definition (PUT replaces it: a missing optional field takes its default)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique in its scope.")
    scope: ScopeText
    description: str = ""
    enabled: bool = Field(True, description="A disabled group is refreshed only on demand.")
    frozen: bool = Field(False, description="A frozen group keeps its members: refreshes are refused.")
    criteria: CriteriaTree = None
    include: UserIds = Field(default_factory=list)
    exclude: UserIds = Field(default_factory=list)

    def definition(self) -> groups.GroupDefinition:
        return groups.GroupDefinition(
            name=self.name,
            scope=self.scope,
            description=self.description,
            enabled=self.enabled,
            frozen=self.frozen,
            criteria=self.criteria,
            include=self.include,
            exclude=self.exclude,
        )


class GroupIn(GroupDefinitionIn):
    group_id: str = Field(
        description="1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit."
    )


class GroupPatchIn(BaseModel):
    """A JSON merge patch: only the fields present change. null resets a field to its default (no
    criteria, empty lists, an empty description, enabled, not frozen); name and scope cannot be null."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    scope: str | None = None
    description: str | None = None
    enabled: bool | None = None
    frozen: bool | None = None
    criteria: CriteriaTree = None
    include: list[str] | None = None
    exclude: list[str] | None = None

    def changes(self) -> dict[str, Any]:
        """The keyword arguments of :func:`groups.update_group` for the fields present."""
        given = {name: getattr(self, name) for name in self.model_fields_set}
        for required in ("name", "scope"):
            if required in given and given[required] is None:
                raise InvalidBody(f"{required} cannot be null")
        defaults: dict[str, Any] = {
            "description": "",
            "enabled": True,
            "frozen": False,
            "include": [],
            "exclude": [],
        }
        return {
            name: defaults[name] if value is None and name in defaults else value
            for name, value in given.items()
        }


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    criteria: CriteriaTree = Field(
        None, description="Criteria to try instead of the stored ones (absent: the stored ones; null: none)."
    )


class GroupSummaryOut(BaseModel):
    group_id: str
    name: str
    scope: str
    description: str
    enabled: bool
    frozen: bool
    criteria: dict[str, Any] | None
    version: int = Field(description='The ETag is "<group_id>.<version>".')
    member_count: int
    last_refreshed_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class GroupOut(GroupSummaryOut):
    include: list[str]
    exclude: list[str]


class RefreshOut(BaseModel):
    joined: int
    left: int
    member_count: int = Field(description="After the refresh.")


class GroupChangedOut(GroupOut):
    refresh: RefreshOut | None = Field(
        description="The membership refresh the change caused; null if none (a frozen group, or only "
        "the name, description or enabled flag changed)."
    )


class GroupRefreshOut(RefreshOut):
    group_id: str


class PreviewOut(RefreshOut):
    joined_ids: list[str] = Field(description="Up to ``sample`` of them, sorted.")
    left_ids: list[str] = Field(description="Up to ``sample`` of them, sorted.")


class MemberOut(BaseModel):
    user_id: str
    joined_at: Timestamp
    reason: str = Field(description="criteria or included.")


class MembersPageOut(BaseModel):
    members: list[MemberOut]
    next_after: str | None = Field(description="When the page is full: the ``after`` of the next page.")


class MembershipChangeOut(BaseModel):
    id: int
    group_id: str
    user_id: str
    change: str = Field(description="joined or left.")
    at: Timestamp
    reason: str = Field(description="Of a join: criteria or included; of a leave: not-matched or excluded.")


class HistoryPageOut(BaseModel):
    history: list[MembershipChangeOut]
    next_after: int | None = Field(description="When the page is full: the ``after`` of the next page.")


class MembersImportOut(BaseModel):
    group_id: str
    version: int
    include: int = Field(description="The size of the include list after the import.")
    exclude: int = Field(description="The size of the exclude list after the import.")
    refresh: RefreshOut | None = Field(description="Null for a frozen group.")


IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='The group\'s ETag ("<group_id>.<version>") as read: the change is refused (412 '
        "version-conflict) if the group changed since. Without it, no check.",
    ),
]
ETAG = re.compile(r'^(W/)?"([^"]*)"$')
ETAG_VERSION = re.compile(r"^[0-9]{1,18}$")


def expected_version(if_match: str | None, group_id: str) -> int | None:
    """The version If-Match names: None without the header or with ``*``. Not one entity tag: 400
    ``invalid-if-match``; an entity tag that cannot be this group's current one (a weak one, another
    group's, not ``"<group_id>.<version>"``): 412 ``version-conflict``, as a stale version."""
    if if_match is None or if_match.strip() == "*":
        return None
    match = ETAG.match(if_match.strip())
    if match is None:
        raise InvalidIfMatch(f'If-Match {if_match!r}: expected one entity tag, "<group_id>.<version>", or *')
    weak, tag = match.groups()
    name, _, version = tag.rpartition(".")
    if weak or name != group_id or not ETAG_VERSION.match(version):
        raise VersionConflict(f"If-Match {if_match.strip()} is not an entity tag of group {group_id}")
    return int(version)


def _changed(view: groups.GroupView, result: RefreshResult | None, response: Response) -> dict[str, Any]:
    response.headers["ETag"] = view.group.etag
    return {**group_json(view), "refresh": None if result is None else refresh_json(result)}


GROUP_CONFLICT: Responses = {409: {"model": ErrorResponse, "description": "Conflict"}}
PRECONDITION: Responses = {
    400: {"model": ErrorResponse, "description": "A malformed If-Match (invalid-if-match)"},
    412: {"model": ErrorResponse, "description": "The group changed since it was read (version-conflict)"},
}
ETAG_HEADER: dict[str, Any] = {"ETag": {"description": 'The group\'s "<group_id>.<version>"'}}


@routes.get("/v1/criteria/types", tags=["groups"], responses=INVALID)
def criteria_types(app: AppDep) -> list[dict[str, Any]]:
    """Every registered criterion type (shipped and from plugins): its operators, scopes, the facts it
    reads and its config's JSON schema, from which a UI builds its forms."""
    return criteria_types_json(app.registry)


@routes.post(
    "/v1/groups",
    tags=["groups"],
    status_code=201,
    response_model=GroupChangedOut,
    responses={
        201: {"headers": ETAG_HEADER, "description": "Created, its membership computed"},
        **INVALID,
        **GROUP_CONFLICT,
    },
)
def create_user_group(app: AppDep, body: GroupIn, response: Response) -> dict[str, Any]:
    """Create a group and compute its membership (not for a frozen one). 409 ``group-exists`` if its id,
    or its name in its scope, is taken; 422 ``invalid-criteria``, ``invalid-scope`` or ``invalid-group``."""
    view, result = app.sync.create_group(body.group_id, body.definition())
    app.relay()
    response.headers["Location"] = f"/v1/groups/{view.group.group_id}"
    return _changed(view, result, response)


@routes.get("/v1/groups", tags=["groups"], response_model=list[GroupSummaryOut], responses=INVALID)
def list_user_groups(
    app: AppDep,
    scope: Annotated[
        str | None, Query(description="Only this scope's groups (instance, course:<id>, ...).")
    ] = None,
) -> list[dict[str, Any]]:
    """Every group by id, without its include and exclude lists."""
    return [group_summary_json(group) for group in groups.list_groups(app.uow_factory(), scope=scope)]


@routes.get(
    "/v1/groups/{group_id}",
    tags=["groups"],
    response_model=GroupOut,
    responses={200: {"headers": ETAG_HEADER}, **INVALID, **NOT_FOUND},
)
def get_user_group(app: AppDep, group_id: str, response: Response) -> dict[str, Any]:
    """One group with its include and exclude lists; the ETag header is what If-Match takes."""
    view = app.sync.get_group(group_id)
    response.headers["ETag"] = view.group.etag
    return group_json(view)


@routes.put(
    "/v1/groups/{group_id}",
    tags=["groups"],
    response_model=GroupChangedOut,
    responses={200: {"headers": ETAG_HEADER}, **INVALID, **NOT_FOUND, **GROUP_CONFLICT, **PRECONDITION},
)
def replace_user_group(
    app: AppDep, group_id: str, body: GroupDefinitionIn, response: Response, if_match: IfMatch = None
) -> dict[str, Any]:
    """Replace a group's definition (a missing optional field takes its default); the membership is
    refreshed when the rules changed, unless the group is frozen. Answers the new ETag."""
    definition = body.definition()
    view, result = app.sync.update_group(
        group_id,
        expected_version=expected_version(if_match, group_id),
        name=definition.name,
        scope=definition.scope,
        description=definition.description,
        enabled=definition.enabled,
        frozen=definition.frozen,
        criteria=definition.criteria,
        include=definition.include,
        exclude=definition.exclude,
    )
    app.relay()
    return _changed(view, result, response)


@routes.patch(
    "/v1/groups/{group_id}",
    tags=["groups"],
    response_model=GroupChangedOut,
    responses={200: {"headers": ETAG_HEADER}, **INVALID, **NOT_FOUND, **GROUP_CONFLICT, **PRECONDITION},
)
def patch_user_group(
    app: AppDep, group_id: str, body: GroupPatchIn, response: Response, if_match: IfMatch = None
) -> dict[str, Any]:
    """Change only the fields present (a JSON merge patch; ``application/merge-patch+json`` is taken
    too): ``"criteria": null`` removes the criteria. Answers the new ETag."""
    view, result = app.sync.update_group(
        group_id, expected_version=expected_version(if_match, group_id), **body.changes()
    )
    app.relay()
    return _changed(view, result, response)


@routes.delete(
    "/v1/groups/{group_id}",
    tags=["groups"],
    status_code=204,
    response_class=Response,
    responses={**INVALID, **NOT_FOUND, **PRECONDITION},
)
def delete_user_group(app: AppDep, group_id: str, if_match: IfMatch = None) -> Response:
    """Delete a group, its overrides, members and history. A group linked to a team deletes
    the team first; one linked to a cohort or a track follows the delete policy (409
    ``delete-restricted`` under restrict). The ``Courseinfra-Delete-Outcome`` header says what was done:
    ``deleted``, ``detached`` (the legacy group stays) or ``archived`` (both stay, the group disabled)."""
    outcome = app.sync.delete_group(group_id, expected_version=expected_version(if_match, group_id))
    return Response(status_code=204, headers={"Courseinfra-Delete-Outcome": outcome})


@routes.get(
    "/v1/groups/{group_id}/members",
    tags=["groups"],
    response_model=MembersPageOut,
    responses={**INVALID, **NOT_FOUND},
)
def list_group_members(
    app: AppDep,
    group_id: str,
    after: Annotated[str, Query(description="Only user ids above this one (paging).")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Members by user id, each with when and why it joined."""
    with app.uow_factory() as uow:
        if uow.groups.get(group_id) is None:
            raise groups.GroupNotFound(f"no user group {group_id}")
        found = uow.memberships.members(group_id, after=after, limit=limit)
    return {
        "members": [member_json(member) for member in found],
        "next_after": found[-1].user_id if len(found) == limit else None,
    }


@routes.get(
    "/v1/groups/{group_id}/history",
    tags=["groups"],
    response_model=HistoryPageOut,
    responses={**INVALID, **NOT_FOUND},
)
def list_group_history(
    app: AppDep,
    group_id: str,
    user_id: Annotated[str | None, Query(description="Only this user's joins and leaves.")] = None,
    after: Annotated[int, Query(ge=0, description="Only ids above this one (paging).")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Joins and leaves in the order they happened, with their time and reason."""
    with app.uow_factory() as uow:
        if uow.groups.get(group_id) is None:
            raise groups.GroupNotFound(f"no user group {group_id}")
        found = uow.memberships.history(group_id, user_id=user_id, after_id=after, limit=limit)
    return {
        "history": [membership_change_json(change) for change in found],
        "next_after": found[-1].id if len(found) == limit else None,
    }


@routes.post(
    "/v1/groups/{group_id}/preview",
    tags=["groups"],
    response_model=PreviewOut,
    responses={**INVALID, **NOT_FOUND},
)
def preview_user_group(
    app: AppDep,
    group_id: str,
    body: Annotated[PreviewIn | None, Body()] = None,
    sample: Annotated[int, Query(ge=0, le=1000, description="How many ids of each kind to list.")] = 100,
) -> dict[str, Any]:
    """Who a refresh would add and remove, with the stored criteria or those of the body; writes
    nothing."""
    criteria = body.criteria if body is not None and "criteria" in body.model_fields_set else groups.UNSET
    result = groups.preview_group(group_id, app.uow_factory(), app.registry, criteria=criteria, sample=sample)
    return preview_json(result)


@routes.get("/v1/groups/{group_id}/explain/{user_id}", tags=["groups"], responses={**INVALID, **NOT_FOUND})
def explain_group_membership(app: AppDep, group_id: str, user_id: str) -> dict[str, Any]:
    """Why a user is or is not a member: the stored membership, what an evaluation now decides and its
    reason (excluded, included, criteria, not-matched, unknown-user), and every criterion's outcome."""
    return groups.explain_membership(group_id, user_id, app.uow_factory(), app.registry)


@routes.post(
    "/v1/groups/refresh",
    tags=["groups"],
    response_model=dict[str, RefreshOut],
    responses=INVALID,
)
def refresh_all_groups(app: AppDep) -> dict[str, Any]:
    """Refresh every enabled, unfrozen group (one transaction each); the results by group id."""
    results = app.sync.refresh_all()
    app.relay()
    return refresh_all_json(results)


@routes.post(
    "/v1/groups/{group_id}/refresh",
    tags=["groups"],
    response_model=GroupRefreshOut,
    responses={**INVALID, **NOT_FOUND, 409: {"model": ErrorResponse, "description": "The group is frozen"}},
)
def refresh_user_group(app: AppDep, group_id: str) -> dict[str, Any]:
    """Re-evaluate a group now and apply the difference (even a disabled one); 409 ``group-frozen`` for
    a frozen group. The version, and so the ETag, does not change."""
    group, result = app.sync.refresh_group(group_id)
    app.relay()
    return {"group_id": group.group_id, **refresh_json(result)}


class LegacyMembersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    add: list[str] = Field(
        default_factory=list, description="Users to add to the legacy group, then the user group."
    )
    remove: list[str] = Field(
        default_factory=list, description="Users to remove from it (cohorts and teams)."
    )


@routes.post(
    "/v1/groups/{group_id}/legacy-members",
    tags=["sync"],
    responses={
        **INVALID,
        **NOT_FOUND,
        502: {"model": ErrorResponse, "description": "The legacy system failed"},
    },
)
def change_legacy_members(app: AppDep, group_id: str, body: LegacyMembersIn) -> dict[str, Any]:
    """Change the members of a group linked to a legacy group: the legacy group first, then the user
    group mirrors it; on a legacy failure nothing changes on either side (``legacy-sync-failed``)."""
    result = app.sync.add_members(group_id, body.add) if body.add else None
    if body.remove:
        result = app.sync.remove_members(group_id, body.remove)
    app.relay()
    return {"group_id": group_id, **(refresh_json(result) if result else {})}


@routes.get("/v1/sync/status", tags=["sync"])
def sync_status(app: AppDep) -> dict[str, Any]:
    """Every link whose user group and legacy group differ, and the sync failures with the legacy error."""
    return app.sync.status()


MEMBERS_CSV_EXAMPLE = "user_id,action\nu1,include\nu2,exclude\nu3\n"

MEMBERS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "CSV with a header row: a user_id column and an optional action column (include, "
        "the default, or exclude).",
        "content": {
            "text/csv": {"schema": {"type": "string"}, "example": MEMBERS_CSV_EXAMPLE},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}
TEXT_MEDIA_TYPES = ("text/csv", "text/plain", "")


@routes.post(
    "/v1/groups/{group_id}/members/import",
    tags=["groups"],
    response_model=MembersImportOut,
    responses={
        200: {"headers": ETAG_HEADER},
        **NOT_FOUND,
        **PRECONDITION,
        422: {"model": ErrorResponse, "description": "Bad rows (in ``details``): nothing imported"},
    },
    openapi_extra=MEMBERS_BODY,
)
def import_group_members(
    app: AppDep,
    group_id: str,
    request: Request,
    response: Response,
    body: Annotated[bytes, Depends(raw_body)],
    if_match: IfMatch = None,
) -> Any:
    """Add the users of a CSV file to the include (or exclude) list and refresh the membership, all or
    nothing: with any bad row (unknown user, duplicate, bad action), 422 ``invalid-members-file`` lists
    every one in ``details`` (``{line, reason}``) and nothing changes."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in TEXT_MEDIA_TYPES:
        raise StarletteHTTPException(415, f"the body is CSV text (text/csv), not {media_type}")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidBody(f"the body is not UTF-8: {error}") from None
    try:
        view, result = groups.import_members(
            group_id, text, app.uow_factory(), expected_version=expected_version(if_match, group_id)
        )
    except groups.InvalidMembersFile as error:
        return error_json(
            422, error.code, str(error), [{"line": line, "reason": reason} for line, reason in error.rows]
        )
    app.relay()
    response.headers["ETag"] = view.group.etag
    return members_import_json(view, result)


@routes.get("/v1/counters", tags=["operations"], response_model=dict[str, dict[str, int]])
def counters(app: AppDep) -> dict[str, dict[str, int]]:
    """Cumulative counters of every job."""
    with app.uow_factory() as uow:
        return uow.counters.all()


@routes.get(
    "/metrics",
    tags=["operations"],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics, read from the database at each scrape."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@routes.get(
    "/healthz",
    tags=["operations"],
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database or the cache does not answer"}},
)
def healthz(app: AppDep, response: Response) -> HealthOut:
    """Cheap checks that the database and the cache answer."""
    database = _check(lambda: _last_failed_id(app))
    cache = _check(lambda: app.cache.get(HEALTH_PROBE_KEY))
    healthy = database == cache == "ok"
    if not healthy:
        response.status_code = 503
    return HealthOut(status="ok" if healthy else "error", database=database, cache=cache)


def _last_failed_id(app: App) -> int:
    with app.uow_factory() as uow:
        return uow.failed_events.last_id()


def _check(probe: Callable[[], object]) -> str:
    try:
        probe()
    except Exception as error:
        # The type only: a driver's message may carry a host name or a user.
        return f"error: {type(error).__name__}"
    return "ok"


# --- the application -------------------------------------------------------------------------------


def create_app(app: App | None = None) -> FastAPI:
    """The FastAPI application serving ``app``, or the one bootstrapped from the settings at start-up."""

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        if app is not None:
            yield
            return
        owned = await run_in_threadpool(lambda: bootstrap(load_settings()))
        api.state.courseinfra = owned
        try:
            yield
        finally:
            api.state.courseinfra = None
            owned.close()

    api = FastAPI(
        title="courseinfra",
        version=__version__,
        summary="Course infrastructure jobs: hierarchy store, relation cache, event ingest.",
        lifespan=lifespan,
        responses={500: {"model": ErrorResponse, "description": "Internal error"}},
    )
    api.state.courseinfra = app
    registry = CollectorRegistry()
    registry.register(CountersCollector(lambda: app_of(api)))
    api.state.metrics_registry = registry
    install_error_handlers(api)
    api.include_router(routes)
    return api


def error_json(status: int, code: str, message: str, details: list[Any] | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status)


HTTP_CODES = {404: "not-found", 405: "method-not-allowed", 415: "unsupported-media-type"}


def install_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(DomainError)
    async def domain_error(_request: Request, error: DomainError) -> JSONResponse:
        return error_json(STATUS_BY_CODE.get(error.code, DEFAULT_ERROR_STATUS), error.code, str(error))

    @api.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = jsonable_encoder(error.errors())
        message = "; ".join(
            f"{'.'.join(str(part) for part in problem.get('loc', ()))}: {problem.get('msg', '')}"
            for problem in problems
        )
        return error_json(422, "invalid-request", message or "invalid request", problems)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        response = error_json(
            error.status_code, HTTP_CODES.get(error.status_code, f"http-{error.status_code}"), error.detail
        )
        if error.headers:
            response.headers.update(error.headers)
        return response

    @api.exception_handler(Exception)
    async def internal_error(_request: Request, error: Exception) -> JSONResponse:
        return error_json(500, "internal-error", f"internal error ({type(error).__name__})")
