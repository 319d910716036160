"""A fake Open edX serving the legacy group APIs (cohorts v1, teams v0, enrollment v1) over real HTTP.

It reproduces the wire of the real platform as read from its source (see the spec in the project
notes, ``openedx-legacy-api.md``): paths, bodies, status codes, error bodies and pagination shapes,
with the quirks clients trip on. The cohort list is a bare array; cohort creation answers 200 and a
duplicate name there a 500 (the platform's uncaught ValueError), while a PATCH answers 204 and a
duplicate name there a 400 ``cohort-name-exists``; there is no cohort DELETE (405); moving a user
between cohorts reports the previous cohort by name; teams and memberships are created with 200; Teams
accept only ``Authorization: Bearer`` (cohorts and enrollment also ``JWT``); the enrolment of a user who
has none is a 200 with an empty body, an unknown user on the enrolment POST a 406; the enrollments list
is cursor-paged (100 a page, newest first).

The rules are those of ``domain.legacy``, so that the fake and the local implementation hold the same
contract. One deliberate difference from the platform: a team is full at its TEAMSET's
``max_team_size``; the real membership POST uses the COURSE-level ``max_team_size`` (default 50; a
"TODO MST-32" in teams/views.py).

Not reproduced: permissions (the one token is a global staff user's, so managed teamsets, private
teamset visibility and organisation protection never apply), emails as user identifiers (every
identifier is a username), cohort settings, content-group links, search and ordering options beyond
the defaults, expired modes, throttling, and the CSV and bulk endpoints.

What Open edX does not have and tests need: :meth:`FakeOpenEdx.seed` (courses, enrolments, modes,
teamsets), :meth:`FakeOpenEdx.fail_next` and :meth:`FakeOpenEdx.delay_next` (injected failures), and
:attr:`FakeOpenEdx.calls` (every request received, as ``(method, path)``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import socket
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from courseinfra.domain.legacy import (
    AlreadyInTeamset,
    AssignmentType,
    Cohort,
    LastRandomCohort,
    LegacyError,
    NotEnrolled,
    Team,
    TeamFull,
    Teamset,
    TeamsetType,
    Track,
    UnknownTrack,
    check_assignment_change,
    check_cohort_name,
    check_team_additions,
    check_track,
    plan_cohort_add,
)

TOKEN = "fake-openedx-staff-token"
DEFAULT_PAGE_SIZE = 10  # LMS REST_FRAMEWORK PAGE_SIZE
TOPICS_PAGE_SIZE = 12  # topics list default
MAX_PAGE_SIZE = 100
ENROLLMENTS_PAGE_SIZE = 100  # CourseEnrollmentsApiListPagination (cursor, fixed size)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _slugify(value: str) -> str:
    """Django's slugify: ASCII letters, digits, underscores and hyphens, lowercased."""
    ascii_value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    ascii_value = re.sub(r"[^\w\s-]", "", ascii_value.lower())
    return re.sub(r"[-\s]+", "-", ascii_value).strip("-_")


# --- state -------------------------------------------------------------------------------------------


@dataclass
class _Enrolment:
    user: str
    course_id: str
    mode: str
    is_active: bool
    seq: int  # creation order: the enrollments list is ordered by -created
    created: str = field(default_factory=_now)


@dataclass
class _Course:
    course_id: str
    modes: list[Track]
    teamsets: dict[str, Teamset]
    max_team_size: int = 50  # teams_configuration's course-level size (the platform's team-full limit)


@dataclass
class _CohortRecord:
    id: int
    course_id: str
    name: str
    assignment_type: str
    members: dict[str, None] = field(default_factory=dict)  # an ordered set


@dataclass
class _TeamRecord:
    team_id: str
    discussion_topic_id: str
    course_id: str
    topic_id: str
    name: str
    description: str
    country: str = ""
    language: str = ""
    date_created: str = field(default_factory=_now)
    members: dict[str, str] = field(default_factory=dict)  # username -> date joined


@dataclass
class _Injection:
    method: str
    path_prefix: str
    times: int
    status: int = 500
    after: int = 0  # matching requests let through first
    body: str = ""
    delay: float = 0.0


@dataclass(frozen=True)
class LmsChange:
    """A change the fake platform made to a learner's groups, as the LMS would publish it (the
    ``on_change`` hook; ``tests.support.openedx_emitter`` turns it into Open edX events):

    - ``cohort-added`` (``group``: the cohort's id, ``name`` its name), ``cohort-removed``;
    - ``team-added`` and ``team-removed`` (``group``: the team id);
    - ``enrolled`` (a new enrolment), ``enrolment-changed`` (``name``: the mode; ``active``)."""

    kind: str
    course_id: str
    user: str
    group: str = ""
    name: str = ""
    active: bool = True


class FakeOpenEdx:
    """The in-memory state of the fake platform, with its admin (test-only) methods. ``on_change``, when
    set, is told every change of a learner's cohort, team or enrolment, as the LMS's signals are."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self._lock = threading.RLock()
        self.on_change: Callable[[LmsChange], None] | None = None
        self.reset()

    def changed(self, change: LmsChange) -> None:
        if self.on_change is not None:
            self.on_change(change)

    def reset(self) -> None:
        with self._lock:
            self.on_change = None
            self.users: set[str] = set()
            self.courses: dict[str, _Course] = {}
            self.enrolments: dict[tuple[str, str], _Enrolment] = {}
            self.cohorts: dict[int, _CohortRecord] = {}
            self.cohort_of: dict[tuple[str, str], int] = {}  # (course, user) -> cohort id
            self.teams: dict[str, _TeamRecord] = {}
            # (course, teamset, user) -> team: the one team of a user in a teamset, kept by the handlers
            self.team_in_teamset: dict[tuple[str, str, str], str] = {}
            self.injections: list[_Injection] = []
            self.calls: list[tuple[str, str]] = []
            self._ids = itertools.count(1)
            self._seq = itertools.count(1)

    # --- admin: not part of Open edX's API --------------------------------------------------------

    def seed(
        self,
        course_id: str,
        *,
        enrolled: Mapping[str, str] | None = None,
        tracks: Sequence[str | Track] = ("audit",),
        teamsets: Sequence[Teamset] = (),
        users: Sequence[str] = (),
        max_team_size: int = 50,
    ) -> None:
        """Create (or reconfigure) a course: its modes, its teamsets, its course-level team size, and
        active enrolments (user -> mode; the users are created). ``users``: more platform users, enrolled
        nowhere. Modes are named after their slug (``verified``: "Verified") unless given as :class:`Track`."""
        enrolled = enrolled or {}
        modes = [t if isinstance(t, Track) else Track(course_id, t, t.title()) for t in tracks]
        with self._lock:
            for mode in enrolled.values():
                check_track(course_id, mode, modes)
            self.courses[course_id] = _Course(
                course_id, modes, {t.teamset_id: t for t in teamsets}, max_team_size
            )
            self.users.update(users)
            for user, mode in enrolled.items():
                self.users.add(user)
                self.enrolments[(user, course_id)] = _Enrolment(user, course_id, mode, True, next(self._seq))

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        *,
        status: int = 500,
        times: int = 1,
        after: int = 0,
        body: str = "",
    ) -> None:
        """Requests of ``method`` whose path starts with ``path_prefix``: after ``after`` of them are
        handled, the next ``times`` are answered with ``status`` (and ``body``) without being handled."""
        with self._lock:
            self.injections.append(
                _Injection(method.upper(), path_prefix, times, status, after, body or "Injected failure")
            )

    def delay_next(self, method: str, path_prefix: str, seconds: float, *, times: int = 1) -> None:
        """The next ``times`` matching requests wait ``seconds`` before being handled (for timeouts)."""
        with self._lock:
            self.injections.append(_Injection(method.upper(), path_prefix, times, status=0, delay=seconds))

    def _take_injection(self, method: str, path: str) -> _Injection | None:
        with self._lock:
            for injection in self.injections:
                if injection.method == method and path.startswith(injection.path_prefix):
                    if injection.after > 0:
                        injection.after -= 1
                        continue
                    injection.times -= 1
                    if injection.times <= 0:
                        self.injections.remove(injection)
                    return injection
        return None

    def next_id(self) -> int:
        return next(self._ids)

    def next_seq(self) -> int:
        return next(self._seq)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    # --- reads the handlers share -----------------------------------------------------------------

    def is_enrolled(self, user: str, course_id: str) -> bool:
        enrolment = self.enrolments.get((user, course_id))
        return enrolment is not None and enrolment.is_active

    def domain_cohort(self, record: _CohortRecord) -> Cohort:
        # Only "random" assigns automatically; the platform stores any other string.
        kind = AssignmentType.RANDOM if record.assignment_type == "random" else AssignmentType.MANUAL
        return Cohort(str(record.id), record.course_id, record.name, kind, len(record.members))

    def course_cohorts(self, course_id: str) -> list[_CohortRecord]:
        return sorted(
            (c for c in self.cohorts.values() if c.course_id == course_id), key=lambda c: (c.name, c.id)
        )


# --- wire helpers ------------------------------------------------------------------------------------


def _dev_error(status: int, message: str, code: str | None = None) -> JSONResponse:
    body: dict[str, str] = {"developer_message": message}
    if code is not None:
        body["error_code"] = code
    return JSONResponse(body, status_code=status)


def _api_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"developer_message": message, "user_message": message}, status_code=status)


def _field_errors(**errors: str) -> JSONResponse:
    return JSONResponse(
        {"field_errors": {k: {"developer_message": v, "user_message": v} for k, v in errors.items()}},
        status_code=400,
    )


def _empty(status: int) -> Response:
    return Response(status_code=status)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _page_args(request: Request, default_size: int) -> tuple[int, int] | None:
    try:
        page = int(request.query_params.get("page", "1"))
        size = min(int(request.query_params.get("page_size", str(default_size))), MAX_PAGE_SIZE)
    except ValueError:
        return None
    if page < 1 or size < 1:
        return None
    return page, size


def _envelope(
    request: Request,
    items: Sequence[Any],
    default_size: int,
    render: Callable[[Any], Any] = lambda item: item,
    **extra: Any,
) -> JSONResponse:
    """edx-drf-extensions DefaultPagination: ``{next, previous, count, num_pages, current_page, start,
    results}``; a page out of range is a 404. ``render`` makes the JSON of the page's items only."""
    args = _page_args(request, default_size)
    if args is None:
        return JSONResponse({"detail": "Invalid page."}, status_code=404)
    page, size = args
    num_pages = max(1, -(-len(items) // size))
    if page > num_pages:
        return JSONResponse({"detail": "Invalid page."}, status_code=404)
    start = (page - 1) * size

    def link(target: int) -> str | None:
        if target < 1 or target > num_pages:
            return None
        return str(request.url.include_query_params(page=target))

    return JSONResponse(
        {
            "next": link(page + 1),
            "previous": link(page - 1),
            "count": len(items),
            "num_pages": num_pages,
            "current_page": page,
            "start": start,
            "results": [render(item) for item in items[start : start + size]],
            **extra,
        }
    )


# --- the app -----------------------------------------------------------------------------------------


class _Gate:
    """Before any route (a plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs a millisecond a
    request, and the contract makes ten thousand): record the call, apply an injected failure or delay,
    check the token, then handle the request under the state's lock."""

    def __init__(self, app: ASGIApp, fake: FakeOpenEdx) -> None:
        self.app, self.fake = app, fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        self.fake.calls.append((method, path))
        injection = self.fake._take_injection(method, path)
        if injection is not None:
            if not injection.delay:
                failure = Response(injection.body, status_code=injection.status, media_type="text/html")
                await failure(scope, receive, send)
                return
            await asyncio.sleep(injection.delay)
        if not path.startswith("/api/enrollment/v1/course/"):  # course details need no authentication
            # Teams v0 has no JwtAuthentication: a JWT header reads as no credentials at all there.
            schemes = ("Bearer",) if path.startswith("/api/team/") else ("Bearer", "JWT")
            given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            scheme, _, token = given.partition(" ")
            if scheme not in schemes or token != self.fake.token:
                refused = JSONResponse(
                    {
                        "error_code": "token_nonexistent",
                        "developer_message": "The provided access token does not match any valid tokens.",
                    },
                    status_code=401,
                )
                await refused(scope, receive, send)
                return
        with self.fake.lock:
            await self.app(scope, receive, send)


def create_fake_openedx(fake: FakeOpenEdx | None = None) -> FastAPI:
    """The FastAPI app of a fake Open edX over ``fake`` (a new one if None): ``app.state.fake``."""
    state = fake if fake is not None else FakeOpenEdx()
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.fake = state

    app.add_middleware(_Gate, fake=state)
    _cohort_routes(app, state)
    _team_routes(app, state)
    _enrollment_routes(app, state)
    return app


def _cohort_json(record: _CohortRecord, fake: FakeOpenEdx) -> dict[str, Any]:
    # user_count counts the members actively enrolled in the course, not all members.
    active = sum(1 for user in record.members if fake.is_enrolled(user, record.course_id))
    return {
        "name": record.name,
        "id": record.id,
        "user_count": active,
        "assignment_type": record.assignment_type,
        "user_partition_id": None,
        "group_id": None,
    }


def _cohort_routes(app: FastAPI, fake: FakeOpenEdx) -> None:
    base = "/api/cohorts/v1/courses/{course_id}/cohorts"

    def unknown_course(course_id: str) -> JSONResponse:
        return _dev_error(404, f"Course {course_id} not found.")

    def find(course_id: str, cohort_id: str) -> _CohortRecord | None:
        record = fake.cohorts.get(int(cohort_id))
        return record if record is not None and record.course_id == course_id else None

    def cohort_missing() -> JSONResponse:
        return _dev_error(404, "CourseUserGroup matching query does not exist.")

    @app.get(base)
    @app.get(base + "/")
    async def list_cohorts(course_id: str, request: Request) -> Response:
        if course_id not in fake.courses:
            return unknown_course(course_id)
        ordering = request.query_params.get("ordering", "asc")
        if ordering not in ("asc", "desc"):
            return _dev_error(400, "Invalid ordering value.", "invalid-ordering-value")
        records = fake.course_cohorts(course_id)
        if ordering == "desc":
            records.reverse()
        args = _page_args(request, DEFAULT_PAGE_SIZE)
        if args is None:
            return _dev_error(404, "Invalid page.")
        page, size = args
        start = (page - 1) * size
        if page > 1 and start >= len(records):
            return _dev_error(404, "Invalid page.")
        # A bare array: the view paginates the queryset but returns the page without an envelope.
        return JSONResponse([_cohort_json(r, fake) for r in records[start : start + size]])

    @app.post(base)
    @app.post(base + "/")
    async def create_cohort(course_id: str, request: Request) -> Response:
        if course_id not in fake.courses:
            return unknown_course(course_id)
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _dev_error(400, "Malformed JSON.")
        if "name" not in body:
            return _dev_error(400, '"name" must be specified to create cohort.', "missing-cohort-name")
        if "assignment_type" not in body:
            return _dev_error(
                400, '"assignment_type" must be specified to create cohort.', "missing-assignment-type"
            )
        existing = [fake.domain_cohort(c) for c in fake.course_cohorts(course_id)]
        try:
            check_cohort_name(course_id, str(body["name"]), existing)
        except LegacyError:
            # cohorts.add_cohort raises ValueError("You cannot create two cohorts with the same name"),
            # which no v1 view catches: Django's 500 page.
            return Response("<h1>Server Error (500)</h1>", status_code=500, media_type="text/html")
        record = _CohortRecord(fake.next_id(), course_id, str(body["name"]), str(body["assignment_type"]))
        fake.cohorts[record.id] = record
        return JSONResponse(_cohort_json(record, fake), status_code=200)

    @app.get(base + "/{cohort_id:int}")
    async def get_cohort(course_id: str, cohort_id: int) -> Response:
        if course_id not in fake.courses:
            return unknown_course(course_id)
        record = find(course_id, str(cohort_id))
        return cohort_missing() if record is None else JSONResponse(_cohort_json(record, fake))

    @app.post(base + "/{cohort_id:int}")
    async def post_with_id(course_id: str, cohort_id: int) -> Response:
        return _dev_error(405, "Please use the parent endpoint.", "wrong-endpoint")

    @app.patch(base + "/{cohort_id:int}")
    async def patch_cohort(course_id: str, cohort_id: int, request: Request) -> Response:
        if course_id not in fake.courses:
            return unknown_course(course_id)
        record = find(course_id, str(cohort_id))
        if record is None:
            return cohort_missing()
        body = await _json_body(request)
        if not isinstance(body, dict) or not ({"name", "assignment_type"} & body.keys()):
            return _dev_error(400, "Request did not specify any fields to update.", "missing-fields")
        course = [fake.domain_cohort(c) for c in fake.course_cohorts(course_id)]
        name = body.get("name")
        if name is not None and name != record.name:
            try:
                check_cohort_name(course_id, str(name), course, renaming=str(record.id))
            except LegacyError:
                return _dev_error(400, "A cohort with the same name already exists.", "cohort-name-exists")
        kind = body.get("assignment_type")
        if kind is not None:
            new_kind = AssignmentType.RANDOM if kind == "random" else AssignmentType.MANUAL
            try:
                check_assignment_change(fake.domain_cohort(record), new_kind, course)
            except LastRandomCohort:
                return _dev_error(
                    400,
                    "There must be one cohort to which students can automatically be assigned.",
                    "last-random-cohort",
                )
        if name is not None:
            record.name = str(name)
        if kind is not None:
            record.assignment_type = str(kind)
        return _empty(204)

    @app.delete(base + "/{cohort_id:int}")
    async def delete_cohort(course_id: str, cohort_id: int) -> Response:
        # CohortHandler has no delete: DRF's 405 (Open edX cannot delete a cohort).
        return _dev_error(405, 'Method "DELETE" not allowed.')

    @app.get(base + "/{cohort_id:int}/users")
    async def cohort_users(course_id: str, cohort_id: int, request: Request) -> Response:
        record = find(course_id, str(cohort_id))
        if course_id not in fake.courses or record is None:
            return _dev_error(404, f"Cohort (ID {cohort_id}) not found for {course_id}", "cohort-not-found")
        return _envelope(
            request,
            sorted(record.members),
            DEFAULT_PAGE_SIZE,
            lambda u: {"username": u, "email": f"{u}@example.com", "name": u},
        )

    async def add_users(course_id: str, cohort_id: int, request: Request, username: str = "") -> Response:
        record = find(course_id, str(cohort_id))
        if course_id not in fake.courses or record is None:
            return _dev_error(404, f"Cohort (ID {cohort_id}) not found for {course_id}", "cohort-not-found")
        body = await _json_body(request)
        users = body.get("users") if isinstance(body, dict) else None
        if not users:
            if not username:
                return _dev_error(400, "Missing users key in payload", "missing-users")
            users = [username]
        # The view iterates the value: a string goes character by character, as on the platform.
        given = [str(u) for u in users if u]
        unknown = [u for u in given if "@" not in u and u not in fake.users]
        # Emails are not users here: a valid-looking one is pre-assigned, another invalid.
        emails = [u for u in given if "@" in u]
        preassigned = [u for u in emails if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", u)]
        invalid = [u for u in emails if u not in preassigned]
        known = [u for u in given if u in fake.users]
        current = {u: str(fake.cohort_of[(course_id, u)]) for u in known if (course_id, u) in fake.cohort_of}
        plan = plan_cohort_add(fake.domain_cohort(record), known, current)
        for user in (*plan.added, *plan.moved):
            previous = fake.cohort_of.get((course_id, user))
            if previous is not None:
                del fake.cohorts[previous].members[user]
            record.members[user] = None
            fake.cohort_of[(course_id, user)] = record.id
            fake.changed(LmsChange("cohort-added", course_id, user, str(record.id), record.name))
        return JSONResponse(
            {
                "success": True,
                "added": [{"username": u, "email": f"{u}@example.com"} for u in plan.added],
                "changed": [
                    {
                        "username": u,
                        "email": f"{u}@example.com",
                        "previous_cohort": fake.cohorts[int(previous)].name,
                    }
                    for u, previous in plan.moved.items()
                ],
                "present": list(plan.present),
                "unknown": unknown,
                "preassigned": preassigned,
                "invalid": invalid,
            }
        )

    @app.post(base + "/{cohort_id:int}/users")
    async def add_cohort_users(course_id: str, cohort_id: int, request: Request) -> Response:
        return await add_users(course_id, cohort_id, request)

    @app.post(base + "/{cohort_id:int}/users/{username}")
    async def add_cohort_user(course_id: str, cohort_id: int, username: str, request: Request) -> Response:
        return await add_users(course_id, cohort_id, request, username)

    @app.delete(base + "/{cohort_id:int}/users/{username}")
    async def remove_cohort_user(course_id: str, cohort_id: int, username: str) -> Response:
        record = find(course_id, str(cohort_id))
        if course_id not in fake.courses or record is None:
            return _dev_error(404, f"Cohort (ID {cohort_id}) not found for {course_id}", "cohort-not-found")
        if username not in fake.users:
            return _dev_error(404, "User does not exist.", "user-not-found")
        if username not in record.members:
            return _dev_error(400, "User not assigned to the given cohort.", "user-not-in-cohort")
        del record.members[username]
        del fake.cohort_of[(course_id, username)]
        fake.changed(LmsChange("cohort-removed", course_id, username, str(record.id), record.name))
        return _empty(204)

    @app.delete(base + "/{cohort_id:int}/users")
    @app.delete(base + "/{cohort_id:int}/users/")
    async def remove_without_username(course_id: str, cohort_id: int) -> Response:
        return _dev_error(405, "Missing username in path", "missing-username")


def _team_routes(app: FastAPI, fake: FakeOpenEdx) -> None:
    def team_json(team: _TeamRecord, request: Request) -> dict[str, Any]:
        root = str(request.base_url).rstrip("/")
        return {
            "id": team.team_id,
            "discussion_topic_id": team.discussion_topic_id,
            "name": team.name,
            "course_id": team.course_id,
            "topic_id": team.topic_id,
            "date_created": team.date_created,
            "description": team.description,
            "country": team.country,
            "language": team.language,
            "last_activity_at": team.date_created,
            "membership": [
                {
                    "user": {"username": u, "url": f"{root}/api/user/v1/accounts/{u}"},
                    "date_joined": joined,
                    "last_activity_at": joined,
                }
                for u, joined in team.members.items()
            ],
            "organization_protected": False,
        }

    def membership_json(team: _TeamRecord, user: str, request: Request) -> dict[str, Any]:
        root = str(request.base_url).rstrip("/")
        return {
            "user": {"username": user, "url": f"{root}/api/user/v1/accounts/{user}"},
            "team": {"team_id": team.team_id, "url": f"{root}/api/team/v0/teams/{team.team_id}"},
            "date_joined": team.members[user],
            "last_activity_at": team.members[user],
        }

    def topic_json(course: _Course, teamset: Teamset) -> dict[str, Any]:
        return {
            "id": teamset.teamset_id,
            "name": teamset.name,
            "description": "",
            "type": TeamsetType(teamset.type).value,
            "max_team_size": teamset.max_team_size,
            "team_count": sum(
                1
                for t in fake.teams.values()
                if t.course_id == course.course_id and t.topic_id == teamset.teamset_id
            ),
        }

    def teamset_of(team: _TeamRecord) -> Teamset | None:
        course = fake.courses.get(team.course_id)
        return None if course is None else course.teamsets.get(team.topic_id)

    @app.get("/api/team/v0/topics/")
    async def topics(request: Request) -> Response:
        course_id = request.query_params.get("course_id")
        if not course_id:
            return _field_errors(course_id="course_id must be provided")
        course = fake.courses.get(course_id)
        if course is None:
            return _empty(404)
        order_by = request.query_params.get("order_by", "name")
        if order_by not in ("name", "team_count"):
            return _api_error(400, f"unsupported order_by value {order_by}")
        items = sorted((topic_json(course, t) for t in course.teamsets.values()), key=lambda t: t["name"])
        if order_by == "team_count":
            items.sort(key=lambda t: -t["team_count"])
        return _envelope(request, items, TOPICS_PAGE_SIZE, sort_order=order_by)

    @app.get("/api/team/v0/topics/{topic_id},{course_id}")
    async def topic(topic_id: str, course_id: str) -> Response:
        course = fake.courses.get(course_id)
        if course is None or topic_id not in course.teamsets:
            return _empty(404)
        return JSONResponse(topic_json(course, course.teamsets[topic_id]))

    @app.get("/api/team/v0/teams/")
    async def list_teams(request: Request) -> Response:
        course_id = request.query_params.get("course_id")
        if not course_id:
            return _api_error(400, "course_id must be provided")
        course = fake.courses.get(course_id)
        if course is None:
            return _empty(404)
        topic_id = request.query_params.get("topic_id")
        if topic_id is not None and topic_id not in course.teamsets:
            return _api_error(400, f"The supplied topic id {topic_id} is not valid")
        chosen = sorted(
            (
                t
                for t in fake.teams.values()
                if t.course_id == course_id and (topic_id is None or t.topic_id == topic_id)
            ),
            key=lambda t: t.name,
        )
        return _envelope(
            request, [team_json(t, request) for t in chosen], DEFAULT_PAGE_SIZE, sort_order="name"
        )

    @app.post("/api/team/v0/teams/")
    async def create_team(request: Request) -> Response:
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _api_error(400, "Malformed JSON.")
        course_id = body.get("course_id")
        if not course_id:
            return _field_errors(course_id="course_id is required")
        course = fake.courses.get(str(course_id))
        if course is None:
            return _empty(404)
        topic_id = body.get("topic_id")
        if not topic_id:
            return _field_errors(topic_id="topic_id is required")
        if topic_id not in course.teamsets:
            return _empty(404)
        # The serializer: name and description are required CharFields (blank refused, whitespace trimmed).
        errors: dict[str, str] = {}
        name = str(body.get("name") or "").strip()
        description = str(body.get("description") or "").strip()
        if not name:
            errors["name"] = "This field may not be blank."
        elif len(name) > 255:
            errors["name"] = "Ensure this field has no more than 255 characters."
        if not description:
            errors["description"] = "This field may not be blank."
        elif len(description) > 300:
            errors["description"] = "Ensure this field has no more than 300 characters."
        if errors:
            return _field_errors(**errors)
        hex_id = uuid.uuid4().hex
        team = _TeamRecord(
            team_id=f"{_slugify(name)[:20]}-{hex_id}",
            discussion_topic_id=hex_id,
            course_id=course.course_id,
            topic_id=str(topic_id),
            name=name,
            description=description,
            country=str(body.get("country") or ""),
            language=str(body.get("language") or ""),
        )
        fake.teams[team.team_id] = team
        # The caller is staff: not added to the team it creates. And 200, not 201.
        return JSONResponse(team_json(team, request), status_code=200)

    @app.get("/api/team/v0/teams/{team_id}")
    async def get_team(team_id: str, request: Request) -> Response:
        team = fake.teams.get(team_id)
        return _empty(404) if team is None else JSONResponse(team_json(team, request))

    @app.patch("/api/team/v0/teams/{team_id}")
    async def patch_team(team_id: str, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/merge-patch+json":
            return JSONResponse(
                {"detail": f'Unsupported media type "{request.headers.get("content-type", "")}" in request.'},
                status_code=415,
            )
        team = fake.teams.get(team_id)
        if team is None:
            return _empty(404)
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _api_error(400, "Malformed JSON.")
        read_only = {
            "id",
            "course_id",
            "date_created",
            "discussion_topic_id",
            "last_activity_at",
            "membership",
        }
        errors = {k: "This field is not editable" for k in body if k in read_only}
        for key in ("name", "description"):
            if key in body and not str(body[key] or "").strip():
                errors[key] = "This field may not be blank."
        if errors:
            return _field_errors(**errors)
        for key in ("name", "description", "country", "language"):
            if key in body:
                setattr(team, key, str(body[key]).strip())
        return JSONResponse(team_json(team, request))

    @app.delete("/api/team/v0/teams/{team_id}")
    async def delete_team(team_id: str) -> Response:
        team = fake.teams.pop(team_id, None)
        if team is None:
            return _empty(404)
        for user in team.members:
            del fake.team_in_teamset[(team.course_id, team.topic_id, user)]
        return _empty(204)  # the memberships go with the team (FK cascade)

    @app.get("/api/team/v0/team_membership/")
    async def list_memberships(request: Request) -> Response:
        query = request.query_params
        username, team_id = query.get("username"), query.get("team_id")
        teamset_id, course_id = query.get("teamset_id"), query.get("course_id")
        if not (username or team_id or teamset_id):
            return _api_error(400, "username or (team_id or teamset_id) must be specified.")
        if team_id and teamset_id:
            return _api_error(400, "teamset_id and team_id are mutually exclusive options.")
        if teamset_id and not course_id:
            return _api_error(400, "teamset_id requires course_id to also be provided.")
        chosen: list[_TeamRecord]
        if team_id:
            team = fake.teams.get(team_id)
            if team is None:
                return _empty(404)
            if course_id and team.course_id != course_id:
                return _api_error(400, "The team does not belong to the course.")
            chosen = [team]
        elif teamset_id:
            course = fake.courses.get(str(course_id))
            if course is None or teamset_id not in course.teamsets:
                return _api_error(404, "No teamset found in given course with given id")
            chosen = [t for t in fake.teams.values() if t.course_id == course_id and t.topic_id == teamset_id]
        else:
            chosen = [t for t in fake.teams.values() if not course_id or t.course_id == course_id]
        pairs = [(t, u) for t in chosen for u in t.members if not username or u == username]
        return _envelope(
            request, pairs, DEFAULT_PAGE_SIZE, lambda pair: membership_json(pair[0], pair[1], request)
        )

    @app.post("/api/team/v0/team_membership/")
    async def add_membership(request: Request) -> Response:
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _api_error(400, "Malformed JSON.")
        if not body.get("username"):
            return _field_errors(username="Username is required.")
        if not body.get("team_id"):
            return _field_errors(team_id="Team id is required.")
        user, team = str(body["username"]), fake.teams.get(str(body["team_id"]))
        # The platform's order: team exists, access, user exists, full, managed, teamset and enrolment.
        if team is None or user not in fake.users:
            return _empty(404)
        teamset = teamset_of(team)
        if teamset is None:
            return _empty(404)
        domain_team = Team(team.team_id, team.course_id, team.topic_id, team.name, team.description)
        if user in team.members:
            return _api_error(400, f"The user {user} is already a member of a team in this teamset.")
        # The rules of domain.legacy, asked about this one user. The team's members are given as the room
        # left in it (the same rule, without copying a big team on every POST). The platform's limit is
        # the COURSE-level max_team_size (TODO MST-32 in teams/views.py); the fake uses the teamset's, the
        # contract of the local implementation.
        room = replace(teamset, max_team_size=teamset.max_team_size - len(team.members))
        other_team = fake.team_in_teamset.get((team.course_id, team.topic_id, user))
        try:
            # First the size alone (as if the user broke no other rule): the platform checks it first.
            check_team_additions(domain_team, room, [user], members=(), team_in_teamset={}, enrolled=[user])
            check_team_additions(
                domain_team,
                room,
                [user],
                members=(),
                team_in_teamset={} if other_team is None else {user: other_team},
                enrolled=[user] if fake.is_enrolled(user, team.course_id) else [],
            )
        except TeamFull:
            return _api_error(400, "This team is already full.")
        except AlreadyInTeamset:
            return _api_error(400, f"The user {user} is already a member of a team in this teamset.")
        except NotEnrolled:
            return _api_error(
                400, f"The user {user} is not enrolled in the course associated with this team."
            )
        team.members[user] = _now()
        fake.team_in_teamset[(team.course_id, team.topic_id, user)] = team.team_id
        fake.changed(LmsChange("team-added", team.course_id, user, team.team_id, team.name))
        return JSONResponse(membership_json(team, user, request), status_code=200)

    @app.get("/api/team/v0/team_membership/{team_id},{username}")
    async def get_membership(team_id: str, username: str, request: Request) -> Response:
        team = fake.teams.get(team_id)
        if team is None or username not in team.members:
            return _empty(404)
        return JSONResponse(membership_json(team, username, request))

    @app.delete("/api/team/v0/team_membership/{team_id},{username}")
    async def remove_membership(team_id: str, username: str) -> Response:
        team = fake.teams.get(team_id)
        if team is None or username not in team.members:
            return _empty(404)
        del team.members[username]
        del fake.team_in_teamset[(team.course_id, team.topic_id, username)]
        fake.changed(LmsChange("team-removed", team.course_id, username, team.team_id, team.name))
        return _empty(204)


def _enrollment_routes(app: FastAPI, fake: FakeOpenEdx) -> None:
    def mode_json(track: Track) -> dict[str, Any]:
        return {
            "slug": track.mode,
            "name": track.name,
            "min_price": 0,
            "suggested_prices": "",
            "currency": "usd",
            "expiration_datetime": None,
            "description": None,
            "sku": None,
            "bulk_sku": None,
        }

    def course_details(course: _Course) -> dict[str, Any]:
        return {
            "course_id": course.course_id,
            "course_name": course.course_id,
            "enrollment_start": None,
            "enrollment_end": None,
            "course_start": None,
            "course_end": None,
            "invite_only": False,
            "pacing_type": "Instructor Paced",
            "course_modes": [mode_json(t) for t in course.modes],
        }

    def enrolment_json(enrolment: _Enrolment) -> dict[str, Any]:
        return {
            "created": enrolment.created,
            "mode": enrolment.mode,
            "is_active": enrolment.is_active,
            "user": enrolment.user,
            "course_details": course_details(fake.courses[enrolment.course_id]),
        }

    @app.get("/api/enrollment/v1/course/{course_id}")
    async def course(course_id: str) -> Response:
        found = fake.courses.get(course_id)
        if found is None:
            return JSONResponse({"message": f"No course found for course ID '{course_id}'"}, status_code=400)
        return JSONResponse(course_details(found))

    @app.get("/api/enrollment/v1/enrollment/{key}")
    async def get_enrolment(key: str) -> Response:
        user, _, course_id = key.partition(",") if "," in key else ("", "", key)
        enrolment = fake.enrolments.get((user, course_id))
        if enrolment is None:
            # No enrolment, or no such user: a 200 whose body is empty (the view returns None).
            return Response(status_code=200, media_type="application/json")
        return JSONResponse(enrolment_json(enrolment))

    @app.post("/api/enrollment/v1/enrollment")
    async def post_enrolment(request: Request) -> Response:
        body = await _json_body(request)
        if not isinstance(body, dict):
            return JSONResponse({"message": "Malformed JSON."}, status_code=400)
        course_id = (body.get("course_details") or {}).get("course_id")
        if not course_id:
            return JSONResponse(
                {"message": "Course ID must be specified to create a new enrollment."}, status_code=400
            )
        course = fake.courses.get(str(course_id))
        if course is None:
            return JSONResponse({"message": f"No course '{course_id}' found for enrollment"}, status_code=400)
        user = body.get("user")
        if not user or user not in fake.users:
            return JSONResponse({"message": f"The user {user} does not exist."}, status_code=406)
        is_active = body.get("is_active", True)
        if not isinstance(is_active, bool):
            return JSONResponse(
                {"message": f"'{is_active}' is an invalid enrollment activation status."}, status_code=400
            )
        existing = fake.enrolments.get((user, course.course_id))
        mode = body.get("mode") or (existing.mode if existing else "audit")
        try:
            check_track(course.course_id, str(mode), course.modes)
        except UnknownTrack:
            return JSONResponse(
                {
                    "message": f"The [{mode}] course mode is expired or otherwise unavailable for course run "
                    f"[{course.course_id}].",
                    "course_details": course_details(course),
                },
                status_code=400,
            )
        if existing is None:
            existing = _Enrolment(str(user), course.course_id, str(mode), is_active, fake.next_seq())
            fake.enrolments[(str(user), course.course_id)] = existing
            kind = "enrolled"
        else:
            unchanged = (existing.mode, existing.is_active) == (str(mode), is_active)
            existing.mode, existing.is_active = str(mode), is_active
            kind = "" if unchanged else "enrolment-changed"
        if kind:
            fake.changed(LmsChange(kind, course.course_id, str(user), name=str(mode), active=is_active))
        return JSONResponse(enrolment_json(existing))

    @app.get("/api/enrollment/v1/enrollments")
    @app.get("/api/enrollment/v1/enrollments/")
    async def list_enrolments(request: Request) -> Response:
        query = request.query_params
        chosen = list(fake.enrolments.values())
        if query.get("username"):
            names = set(query["username"].split(","))
            chosen = [e for e in chosen if e.user in names]
        if query.get("course_id"):
            chosen = [e for e in chosen if e.course_id == query["course_id"]]
        if query.get("course_ids"):
            wanted = set(query["course_ids"].split(","))
            chosen = [e for e in chosen if e.course_id in wanted]
        chosen.sort(key=lambda e: -e.seq)  # ordering: -created
        # A cursor page: the cursor is opaque (here the position, base64 as DRF's is).
        cursor = query.get("cursor")
        try:
            offset = int(base64.b64decode(cursor).decode().removeprefix("o=")) if cursor else 0
        except ValueError:
            return JSONResponse({"detail": "Invalid cursor"}, status_code=404)
        page = chosen[offset : offset + ENROLLMENTS_PAGE_SIZE]

        def link(position: int) -> str:
            token = base64.b64encode(f"o={position}".encode()).decode()
            return str(request.url.include_query_params(cursor=token))

        return JSONResponse(
            {
                "next": link(offset + ENROLLMENTS_PAGE_SIZE)
                if offset + ENROLLMENTS_PAGE_SIZE < len(chosen)
                else None,
                "previous": link(max(0, offset - ENROLLMENTS_PAGE_SIZE)) if offset else None,
                "results": [
                    {
                        "created": e.created,
                        "mode": e.mode,
                        "is_active": e.is_active,
                        "user": e.user,
                        "course_id": e.course_id,
                    }
                    for e in page
                ],
            }
        )


# --- serving -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeServer:
    base_url: str
    fake: FakeOpenEdx


@contextlib.contextmanager
def serve_fake_openedx(fake: FakeOpenEdx | None = None) -> Iterator[FakeServer]:
    """A fake Open edX served by uvicorn on 127.0.0.1, on a free port, in a background thread."""
    state = fake if fake is not None else FakeOpenEdx()
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY on accepted connections only when the socket says
    # it is TCP, and without it every response waits out the client's delayed ACK (40 ms a request).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_fake_openedx(state), log_level="warning", lifespan="off", ws="none", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake Open edX did not start")
        time.sleep(0.01)
    try:
        yield FakeServer(f"http://127.0.0.1:{port}", state)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def openedx_server() -> Iterator[FakeServer]:
    """One fake Open edX for the session."""
    with serve_fake_openedx() as server:
        yield server


@pytest.fixture
def openedx(openedx_server: FakeServer) -> Iterator[tuple[str, FakeOpenEdx]]:
    """``(base_url, fake)``: the session's fake Open edX, empty for each test."""
    openedx_server.fake.reset()
    yield openedx_server.base_url, openedx_server.fake
    openedx_server.fake.reset()
