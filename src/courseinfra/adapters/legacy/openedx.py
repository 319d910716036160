"""The legacy groups of a real Open edX instance, over its REST APIs: cohorts v1, teams v0, enrollment v1.

Our user id is sent as the Open edX username. Every request carries ``Authorization: Bearer <token>``
(an opaque OAuth2 token of a global-staff service user): it is the one scheme all three APIs accept,
Teams v0 knowing no ``JWT`` header.

The wire is Open edX's, quirks included: the cohort list is a bare JSON array paged by ``page``, a
cohort PATCH answers 204 without a body, adding to a cohort reports a moved user's previous cohort by
NAME, team creation answers 200, the enrollments list is cursor-paged, and the enrolment of a user who
has none is a 200 with an empty body. Every list is read to its last page.

Errors: every documented error answer becomes the ``domain.legacy`` error of the same rule. Anything
else is ``LegacyUnavailable`` (code ``legacy-unavailable``, which the API answers with 502): a transport
error, a timeout, a 5xx the API does not explain, an answer this client does not expect (the status and
an excerpt of the body are in the message), and also a 401 (the token is missing, unknown or expired)
or a 403 (its user lacks the staff rights these calls need), whose messages say so: to the caller they
are the same outage, fixed by an operator, not by a retry with other input. Besides those, a write to
a course Open edX does not know raises ``UnknownCourse`` (code ``course-not-found``; reads of an
unknown course return nothing, as for a course without groups), and a team Open edX refuses for its
fields ``invalid-team``.

All or nothing: the rules the APIs let us read cheaply are checked before the first write (cohort and
team existence, name uniqueness, membership, team size, one team per teamset, enrolment, the track);
writes that Open edX takes one user at a time (team membership, enrolment mode, removal from a cohort)
can still fail midway, and then the error raised carries in ``details`` the users already done, for the
caller to compensate (the ``LegacyGroups`` contract); a team rule broken midway is undone here instead
(see :meth:`OpenEdxLegacyGroups.add_to_team`). Adding to a cohort takes 1000 users per call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from courseinfra.domain.legacy import (
    AlreadyInTeamset,
    AssignmentType,
    Cohort,
    CohortAddResult,
    CohortNameExists,
    CohortNotFound,
    LastRandomCohort,
    LegacyError,
    LegacyUnavailable,
    NotDeletable,
    NotEnrolled,
    Team,
    TeamFull,
    TeamNotFound,
    Teamset,
    TeamsetNotFound,
    TeamsetType,
    Track,
    UnknownCourse,
    UnknownTrack,
    UserNotFound,
    UserNotInCohort,
    UserNotInTeam,
    check_cohort_name,
    check_team_additions,
    check_track,
)
from courseinfra.services.sync.ports import LegacyGroups

PAGE_SIZE = 100  # the largest page every paginated Open edX list accepts
COHORT_CHUNK = 1000  # users per cohort POST: one call for most adds, bounded request bodies for big ones
USERNAME_CHUNK = 100  # usernames per enrollments query, to keep the URL short
DEFAULT_MAX_TEAM_SIZE = 50  # what Open edX applies when teams_configuration sets no size
EXCERPT = 300

# Open edX route patterns: anything else would not route (a 404 without the API's body), so an id that
# cannot match is answered locally.
_COHORT_ID = re.compile(r"[0-9]+")
_TEAM_ID = re.compile(r"[a-z\d_-]+")


def _seg(value: str) -> str:
    """A path segment: Open edX routes match course keys with their ``:`` and ``+`` unescaped."""
    return quote(value, safe=":+@")


def _body(response: httpx.Response) -> Any:
    """The JSON body, or None when there is none (or it is not JSON)."""
    if not response.content.strip():
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _messages(body: Any) -> str:
    """The human-readable part of an Open edX error body (DevErr, ApiErr, field_errors or message)."""
    if not isinstance(body, dict):
        return ""
    parts = [str(body[k]) for k in ("developer_message", "message", "user_message", "detail") if k in body]
    field_errors = body.get("field_errors")
    if isinstance(field_errors, dict):
        for name, error in field_errors.items():
            text = error.get("developer_message", error) if isinstance(error, dict) else error
            parts.append(f"{name}: {text}")
    return "; ".join(parts)


def _unexplained(response: httpx.Response) -> LegacyUnavailable:
    request = response.request
    return LegacyUnavailable(
        f"Open edX answered {request.method} {request.url.path} with {response.status_code}: "
        f"{response.text[:EXCERPT]!r}"
    )


def _partial(error: LegacyError, done: Sequence[str], total: int) -> LegacyError:
    """``error`` raised after ``done`` users were already written: same class and code, the done users
    in ``details`` (what the caller compensates)."""
    return type(error)(
        f"{error} (after {len(done)} of {total} users were done)", code=error.code, details=done
    )


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _assignment(value: Any) -> AssignmentType:
    # Open edX stores any string (its own tests use "automatic"); only "random" assigns learners.
    return AssignmentType.RANDOM if value == AssignmentType.RANDOM.value else AssignmentType.MANUAL


def _teamset_type(value: Any) -> TeamsetType:
    try:
        return TeamsetType(value)
    except ValueError:
        return TeamsetType.OPEN  # Open edX's default type


class OpenEdxLegacyGroups(LegacyGroups):
    """:class:`LegacyGroups` on an Open edX instance at ``base_url`` (the LMS root), as the staff user
    of ``token``. ``client`` lets a caller share a connection pool (it is not closed by :meth:`close`);
    ``timeout`` (seconds) applies to every request."""

    def __init__(
        self, base_url: str, token: str, *, client: httpx.Client | None = None, timeout: float = 10.0
    ) -> None:
        self._base = base_url.rstrip("/")
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client()
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # --- transport ---------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        explained: Collection[int] = (),
    ) -> httpx.Response:
        """The answer if it is a 2xx or a status in ``explained`` (the caller maps it); anything else
        raises ``LegacyUnavailable``."""
        headers = dict(self._headers)
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            response = self._client.request(
                method,
                self._base + path,
                params=dict(params) if params else None,
                content=content,
                headers=headers,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as error:
            raise LegacyUnavailable(
                f"Open edX did not answer {method} {path} within {self._timeout} s"
            ) from error
        except httpx.HTTPError as error:
            raise LegacyUnavailable(f"Open edX could not be reached for {method} {path}: {error}") from error
        status = response.status_code
        if 200 <= status < 300 or status in explained:
            return response
        if status == 401:
            raise LegacyUnavailable(
                f"Open edX refused the token (401) for {method} {path}: {response.text[:EXCERPT]!r}"
            )
        if status == 403:
            raise LegacyUnavailable(
                f"the token's user may not {method} {path} (403): {response.text[:EXCERPT]!r}"
            )
        raise _unexplained(response)

    def _json(self, response: httpx.Response) -> Any:
        body = _body(response)
        if body is None:
            raise _unexplained(response)
        return body

    def _envelope_pages(
        self, path: str, params: Mapping[str, str], *, not_found: LegacyError | None
    ) -> Iterator[dict[str, Any]]:
        """The results of a DefaultPagination list, page after page (``not_found`` for a 404 on the
        first page; None: an empty list)."""
        page = 1
        while True:
            response = self._request(
                "GET", path, params={**params, "page": page, "page_size": PAGE_SIZE}, explained=(404,)
            )
            if response.status_code == 404:
                # A 404 past the first page is DRF's "Invalid page.": the list shrank while we read it.
                if page == 1 and not_found is not None:
                    raise not_found
                return
            body = self._json(response)
            yield from body.get("results", [])
            if not body.get("next"):
                return
            page += 1

    # --- cohorts -----------------------------------------------------------------------------------

    def _cohorts_path(self, course_id: str) -> str:
        return f"/api/cohorts/v1/courses/{_seg(course_id)}/cohorts/"

    def _cohort_path(self, course_id: str, cohort_id: str) -> str:
        if not _COHORT_ID.fullmatch(cohort_id):
            raise CohortNotFound(f"course {course_id} has no cohort {cohort_id!r}")
        return f"{self._cohorts_path(course_id)}{cohort_id}"

    @staticmethod
    def _cohort(course_id: str, item: Mapping[str, Any]) -> Cohort:
        return Cohort(
            cohort_id=str(item["id"]),
            course_id=course_id,
            name=item["name"],
            assignment_type=_assignment(item.get("assignment_type")),
            user_count=int(item.get("user_count") or 0),
        )

    def list_cohorts(self, course_id: str) -> list[Cohort]:
        """Every cohort of the course, by name; none for a course Open edX does not know."""
        # The list is a bare array, one page at a time, with no count and no next link: a short page is
        # the last one, and a 404 past the first page means the previous page was exactly full.
        cohorts: dict[str, Cohort] = {}
        page = 1
        while True:
            response = self._request(
                "GET",
                self._cohorts_path(course_id),
                params={"page": page, "page_size": PAGE_SIZE},
                explained=(404,),
            )
            if response.status_code == 404:
                break
            items = self._json(response)
            if not isinstance(items, list):
                raise _unexplained(response)
            for item in items:
                # A cohort created while we read shifts the name order: keyed by id, none is counted twice.
                cohort = self._cohort(course_id, item)
                cohorts[cohort.cohort_id] = cohort
            if len(items) < PAGE_SIZE:
                break
            page += 1
        return list(cohorts.values())

    def get_cohort(self, course_id: str, cohort_id: str) -> Cohort:
        response = self._request("GET", self._cohort_path(course_id, cohort_id), explained=(404,))
        if response.status_code == 404:
            raise CohortNotFound(f"course {course_id} has no cohort {cohort_id!r}")
        return self._cohort(course_id, self._json(response))

    def create_cohort(
        self, course_id: str, name: str, assignment_type: AssignmentType = AssignmentType.MANUAL
    ) -> Cohort:
        """Checked against the course's cohorts first: Open edX answers a duplicate name with a 500."""
        clean = check_cohort_name(course_id, name, self.list_cohorts(course_id))
        response = self._request(
            "POST",
            self._cohorts_path(course_id),
            body={"name": clean, "assignment_type": assignment_type.value},
            explained=(404, 500),
        )
        if response.status_code == 404:
            raise UnknownCourse(f"Open edX has no course {course_id}")
        if response.status_code == 500:
            # The duplicate-name ValueError escapes the view as a 500: a cohort of that name created
            # since our check explains it; anything else is a failure of the platform.
            check_cohort_name(course_id, clean, self.list_cohorts(course_id))
            raise _unexplained(response)
        return self._cohort(course_id, self._json(response))

    def update_cohort(
        self,
        course_id: str,
        cohort_id: str,
        *,
        name: str | None = None,
        assignment_type: AssignmentType | None = None,
    ) -> Cohort:
        path = self._cohort_path(course_id, cohort_id)
        patch: dict[str, str] = {}
        if name is not None:
            # Only trimmed and checked for emptiness here: the PATCH checks uniqueness (400 cohort-name-exists).
            patch["name"] = check_cohort_name(course_id, name, (), renaming=cohort_id)
        if assignment_type is not None:
            patch["assignment_type"] = assignment_type.value
        if patch:  # an empty PATCH is a 400 missing-fields
            response = self._request("PATCH", path, body=patch, explained=(400, 404))
            if response.status_code == 404:
                raise CohortNotFound(f"course {course_id} has no cohort {cohort_id!r}")
            if response.status_code == 400:
                body = _body(response)
                code = body.get("error_code") if isinstance(body, dict) else None
                if code == CohortNameExists.code:
                    raise CohortNameExists(f"course {course_id} already has a cohort named {patch['name']!r}")
                if code == LastRandomCohort.code:
                    raise LastRandomCohort(
                        f"cohort {cohort_id} is the last random cohort of course {course_id}: "
                        "there must be one to which learners can be assigned automatically"
                    )
                raise _unexplained(response)
        # The PATCH answers 204 without a body: the cohort as it now is takes another read.
        return self.get_cohort(course_id, cohort_id)

    def delete_cohort(self, course_id: str, cohort_id: str) -> None:
        # Open edX has no cohort deletion (DELETE is a 405): refused here, without a call.
        self.get_cohort(course_id, cohort_id)
        raise NotDeletable(
            f"cohort {cohort_id} of course {course_id} cannot be deleted: Open edX keeps cohorts"
        )

    def cohort_members(self, course_id: str, cohort_id: str) -> set[str]:
        missing = CohortNotFound(f"course {course_id} has no cohort {cohort_id!r}")
        return {
            item["username"]
            for item in self._envelope_pages(
                f"{self._cohort_path(course_id, cohort_id)}/users", {}, not_found=missing
            )
        }

    def add_to_cohort(self, course_id: str, cohort_id: str, user_ids: Sequence[str]) -> CohortAddResult:
        """One POST per 1000 users. A username Open edX does not know raises ``UserNotFound`` once its
        chunk is written (Open edX adds the others of the call): ``details`` names the users added or
        moved by then. ``moved`` maps to cohort ids, read back from the previous cohorts' names."""
        path = f"{self._cohort_path(course_id, cohort_id)}/users"
        users = list(dict.fromkeys(user_ids))
        if not users:
            self.get_cohort(course_id, cohort_id)
            return CohortAddResult()
        added: list[str] = []
        present: list[str] = []
        moved_from: dict[str, str] = {}  # user -> previous cohort NAME, as Open edX reports it
        for chunk in _chunks(users, COHORT_CHUNK):
            done = [*added, *moved_from]
            try:
                response = self._request("POST", path, body={"users": list(chunk)}, explained=(404,))
            except LegacyError as error:
                raise _partial(error, done, len(users)) from error
            if response.status_code == 404:
                raise _partial(
                    CohortNotFound(f"course {course_id} has no cohort {cohort_id!r}"), done, len(users)
                )
            body = self._json(response)
            added.extend(item["username"] for item in body.get("added", []))
            moved_from.update({item["username"]: item["previous_cohort"] for item in body.get("changed", [])})
            present.extend(body.get("present", []))
            # Our ids are usernames: an id with "@" is read as an email ("preassigned" when unknown,
            # "invalid" when malformed); neither is a user of the platform.
            unknown = [*body.get("unknown", []), *body.get("preassigned", []), *body.get("invalid", [])]
            if unknown:
                raise UserNotFound(
                    f"Open edX has no users {sorted(unknown)}; the {len(added) + len(moved_from)} others "
                    f"given so far were added to cohort {cohort_id}",
                    details=[*added, *moved_from],
                )
        moved: dict[str, str] = {}
        if moved_from:
            ids = {cohort.name: cohort.cohort_id for cohort in self.list_cohorts(course_id)}
            # A cohort renamed since the move cannot be found by its old name: the name is kept instead.
            moved = {user: ids.get(name, name) for user, name in moved_from.items()}
        return CohortAddResult(tuple(added), moved, tuple(present))

    def remove_from_cohort(self, course_id: str, cohort_id: str, user_ids: Sequence[str]) -> None:
        """One DELETE per user (Open edX removes one at a time), after checking they are all members."""
        users = list(dict.fromkeys(user_ids))
        members = self.cohort_members(course_id, cohort_id)
        outside = sorted(u for u in users if u not in members)
        if outside:
            raise UserNotInCohort(f"{len(outside)} users are not in cohort {cohort_id}", details=outside)
        done: list[str] = []
        for user in users:
            try:
                response = self._request(
                    "DELETE",
                    f"{self._cohort_path(course_id, cohort_id)}/users/{_seg(user)}",
                    explained=(400, 404),
                )
                if response.status_code in (400, 404):
                    body = _body(response)
                    code = body.get("error_code") if isinstance(body, dict) else None
                    if code == UserNotInCohort.code:
                        raise UserNotInCohort(f"user {user} is not in cohort {cohort_id}")
                    if code == UserNotFound.code:
                        raise UserNotFound(f"Open edX has no user {user}")
                    if code == CohortNotFound.code:
                        raise CohortNotFound(f"course {course_id} has no cohort {cohort_id!r}")
                    raise _unexplained(response)
            except LegacyError as error:
                raise _partial(error, done, len(users)) from error
            done.append(user)

    # --- teams -------------------------------------------------------------------------------------

    @staticmethod
    def _team(item: Mapping[str, Any]) -> Team:
        return Team(
            team_id=item["id"],
            course_id=item["course_id"],
            teamset_id=item["topic_id"],
            name=item["name"],
            description=item.get("description") or "",
            size=len(item.get("membership") or ()),
        )

    @staticmethod
    def _team_path(team_id: str) -> str:
        if not _TEAM_ID.fullmatch(team_id):
            raise TeamNotFound(f"there is no team {team_id!r}")
        return f"/api/team/v0/teams/{team_id}"

    def _team_json(self, team_id: str) -> dict[str, Any]:
        response = self._request("GET", self._team_path(team_id), explained=(404,))
        if response.status_code == 404:
            raise TeamNotFound(f"there is no team {team_id!r}")
        body: dict[str, Any] = self._json(response)
        return body

    def list_teamsets(self, course_id: str) -> list[Teamset]:
        """The course's topics; none for a course Open edX does not know. A topic without its own size
        gets the platform's default (50)."""
        return [
            Teamset(
                teamset_id=item["id"],
                course_id=course_id,
                name=item.get("name") or item["id"],
                type=_teamset_type(item.get("type")),
                max_team_size=int(item.get("max_team_size") or DEFAULT_MAX_TEAM_SIZE),
            )
            for item in self._envelope_pages(
                "/api/team/v0/topics/", {"course_id": course_id, "order_by": "name"}, not_found=None
            )
        ]

    def create_team(self, course_id: str, teamset_id: str, name: str, description: str = "") -> Team:
        """Open edX requires a description (blank is a 400): a team created without one is described by
        its name."""
        response = self._request(
            "POST",
            "/api/team/v0/teams/",
            body={
                "course_id": course_id,
                "topic_id": teamset_id,
                "name": name,
                "description": description.strip() or name,
            },
            explained=(400, 404),
        )
        if response.status_code == 404:
            # Unknown course and unknown (or hidden) teamset are the same bodiless 404.
            raise TeamsetNotFound(f"course {course_id} has no teamset {teamset_id!r}")
        if response.status_code == 400:
            raise LegacyError(
                f"Open edX refused the team {name!r}: {_messages(_body(response))}", code="invalid-team"
            )
        return self._team(self._json(response))

    def get_team(self, team_id: str) -> Team:
        return self._team(self._team_json(team_id))

    def update_team(self, team_id: str, *, name: str | None = None, description: str | None = None) -> Team:
        """A blank description becomes the team's name, as in :meth:`create_team`."""
        path = self._team_path(team_id)
        if description is not None and not description.strip():
            description = name if name is not None else self.get_team(team_id).name
        patch = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
        if not patch:
            return self.get_team(team_id)
        response = self._request(
            "PATCH", path, body=patch, content_type="application/merge-patch+json", explained=(400, 404)
        )
        if response.status_code == 404:
            raise TeamNotFound(f"there is no team {team_id!r}")
        if response.status_code == 400:
            raise LegacyError(
                f"Open edX refused the change of team {team_id}: {_messages(_body(response))}",
                code="invalid-team",
            )
        return self._team(self._json(response))

    def delete_team(self, team_id: str) -> None:
        response = self._request("DELETE", self._team_path(team_id), explained=(404,))
        if response.status_code == 404:
            raise TeamNotFound(f"there is no team {team_id!r}")

    def team_members(self, team_id: str) -> set[str]:
        self._team_path(team_id)
        return {
            item["user"]["username"]
            for item in self._envelope_pages(
                "/api/team/v0/team_membership/",
                {"team_id": team_id},
                not_found=TeamNotFound(f"there is no team {team_id!r}"),
            )
        }

    def _teams_in_teamset(self, course_id: str, teamset_id: str) -> dict[str, str]:
        """Each member of a team of the teamset, to their team."""
        return {
            item["user"]["username"]: item["team"]["team_id"]
            for item in self._envelope_pages(
                "/api/team/v0/team_membership/",
                {"teamset_id": teamset_id, "course_id": course_id},
                not_found=None,
            )
        }

    def add_to_team(self, team_id: str, user_ids: Sequence[str]) -> list[str]:
        """The rules are checked first on what Open edX lets us read (the team's members, its teamset's
        size, the teamset's memberships, the users' enrolments): a breach raises before any write, with
        the users that break it. Then one POST per user. A rule broken there (team full, another team, not
        enrolled) is undone by this client, which removes the users it added and raises the rule with the
        users refused; any other failure raises with ``details`` = the users added before it (and so does
        an undoing that fails), for the caller to compensate.

        Open edX itself caps a team at the COURSE's ``max_team_size``, not the teamset's: on a course
        whose cap is below a teamset's, a POST can still answer "team full" midway."""
        raw = self._team_json(team_id)
        team = self._team(raw)
        members = {m["user"]["username"] for m in raw.get("membership") or ()}
        users = list(dict.fromkeys(user_ids))
        if all(u in members for u in users):
            return []
        teamset = next(
            (t for t in self.list_teamsets(team.course_id) if t.teamset_id == team.teamset_id), None
        )
        if teamset is None:
            raise TeamsetNotFound(f"course {team.course_id} has no teamset {team.teamset_id!r}")
        new = [u for u in users if u not in members]
        new = check_team_additions(
            team,
            teamset,
            users,
            members=members,
            team_in_teamset=self._teams_in_teamset(team.course_id, team.teamset_id),
            enrolled=self._active_enrolments(team.course_id, new),
        )
        done: list[str] = []
        for user in new:
            try:
                self._post_membership(team, user)
            except (TeamFull, AlreadyInTeamset, NotEnrolled) as error:
                # A rule the checks above could not see: the platform's course-level size cap, or a race.
                # Undone here, so that a rule error means what it means from the checks (and to callers,
                # which compensate only failures of the platform): nothing changed, ``details`` = the
                # users that break the rule.
                self._take_back(team.team_id, done, error)
                refused = new[len(done) :] if isinstance(error, TeamFull) else [user]
                raise type(error)(
                    f"{error}; the {len(done)} users added before were removed again", details=refused
                ) from error
            except LegacyError as error:
                raise _partial(error, done, len(new)) from error
            done.append(user)
        return done

    def _take_back(self, team_id: str, added: Sequence[str], cause: LegacyError) -> None:
        """Remove ``added`` from the team again; if that fails, ``LegacyUnavailable`` with ``details`` =
        the users still in it (for the caller to compensate)."""
        remaining = list(added)
        while remaining:
            user = remaining[-1]
            try:
                self._request(
                    "DELETE",
                    f"/api/team/v0/team_membership/{team_id},{_seg(user)}",
                    params={"admin": "true"},
                )
            except LegacyError as error:
                raise LegacyUnavailable(
                    f"{cause}; removing the {len(remaining)} users added before it failed too: {error}",
                    details=remaining,
                ) from error
            remaining.pop()

    def _post_membership(self, team: Team, user: str) -> None:
        response = self._request(
            "POST",
            "/api/team/v0/team_membership/",
            body={"team_id": team.team_id, "username": user},
            explained=(400, 404),
        )
        if response.status_code == 404:
            # The same bodiless 404 for an unknown team and an unknown user: the team tells them apart.
            self._team_json(team.team_id)
            raise UserNotFound(f"Open edX has no user {user}")
        if response.status_code == 400:
            message = _messages(_body(response))
            if "already full" in message:
                raise TeamFull(f"team {team.name!r} is full: {message}")
            if "already a member of a team" in message:
                raise AlreadyInTeamset(f"user {user} is already in a team of teamset {team.teamset_id}")
            if "not enrolled" in message:
                raise NotEnrolled(f"user {user} is not enrolled in course {team.course_id}")
            raise _unexplained(response)

    def remove_from_team(self, team_id: str, user_ids: Sequence[str]) -> None:
        """One DELETE per user (Open edX removes one at a time), after checking they are all members."""
        users = list(dict.fromkeys(user_ids))
        members = self.team_members(team_id)
        outside = sorted(u for u in users if u not in members)
        if outside:
            raise UserNotInTeam(f"{len(outside)} users are not in team {team_id}", details=outside)
        done: list[str] = []
        for user in users:
            try:
                response = self._request(
                    "DELETE",
                    f"/api/team/v0/team_membership/{team_id},{_seg(user)}",
                    params={"admin": "true"},  # tracked as removed_by_admin, not as the learner leaving
                    explained=(404,),
                )
                if response.status_code == 404:
                    raise UserNotInTeam(f"user {user} is not in team {team_id}")
            except LegacyError as error:
                raise _partial(error, done, len(users)) from error
            done.append(user)

    # --- enrollment tracks -------------------------------------------------------------------------

    def _enrolment_pages(self, params: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """The enrollments list, cursor page after cursor page."""
        cursor: str | None = None
        while True:
            page_params = dict(params) if cursor is None else {**params, "cursor": cursor}
            response = self._request("GET", "/api/enrollment/v1/enrollments/", params=page_params)
            body = self._json(response)
            yield from body.get("results", [])
            next_url = body.get("next")
            if not next_url:
                return
            # Only the cursor is taken from the link: its host is whatever the LMS believes it is.
            cursors = parse_qs(urlsplit(next_url).query).get("cursor")
            if not cursors:
                raise _unexplained(response)
            cursor = cursors[0]

    def _active_enrolments(self, course_id: str, user_ids: Sequence[str]) -> dict[str, str]:
        """The mode of each of ``user_ids`` actively enrolled in the course."""
        modes: dict[str, str] = {}
        for chunk in _chunks(user_ids, USERNAME_CHUNK):
            for item in self._enrolment_pages({"course_id": course_id, "username": ",".join(chunk)}):
                if item.get("is_active"):
                    modes[item["user"]] = item["mode"]
        return modes

    def list_tracks(self, course_id: str) -> list[Track]:
        """The course's unexpired modes; none for a course Open edX does not know."""
        response = self._request("GET", f"/api/enrollment/v1/course/{_seg(course_id)}", explained=(400, 404))
        if response.status_code != 200:
            return []
        return [
            Track(course_id=course_id, mode=mode["slug"], name=mode.get("name") or "")
            for mode in self._json(response).get("course_modes", [])
        ]

    def track_members(self, course_id: str, mode: str) -> set[str]:
        return {
            item["user"]
            for item in self._enrolment_pages({"course_id": course_id})
            if item.get("is_active") and item.get("mode") == mode
        }

    def set_track(self, course_id: str, user_ids: Sequence[str], mode: str) -> dict[str, str]:
        """The mode and every enrolment are checked first (one GET per user); then one POST per user
        whose mode changes. A failure there raises with ``details`` = the users changed before it."""
        check_track(course_id, mode, self.list_tracks(course_id))
        users = list(dict.fromkeys(user_ids))
        previous: dict[str, str] = {}
        for user in users:
            response = self._request("GET", f"/api/enrollment/v1/enrollment/{_seg(user)},{_seg(course_id)}")
            # No enrolment (or no such user) is a 200 with an empty body.
            enrolment = _body(response)
            if isinstance(enrolment, dict) and enrolment.get("is_active"):
                previous[user] = enrolment["mode"]
        outside = sorted(u for u in users if u not in previous)
        if outside:
            raise NotEnrolled(f"{len(outside)} users are not enrolled in course {course_id}", details=outside)
        changing = [u for u in users if previous[u] != mode]
        done: list[str] = []
        for user in changing:
            try:
                self._post_mode(course_id, user, mode)
            except LegacyError as error:
                raise _partial(error, done, len(changing)) from error
            done.append(user)
        return previous

    def _post_mode(self, course_id: str, user: str, mode: str) -> None:
        response = self._request(
            "POST",
            "/api/enrollment/v1/enrollment",
            body={"user": user, "mode": mode, "course_details": {"course_id": course_id}, "is_active": True},
            explained=(400, 406),
        )
        if response.status_code == 406:
            raise UserNotFound(f"Open edX has no user {user}")
        if response.status_code == 400:
            message = _messages(_body(response))
            if "course mode is expired or otherwise unavailable" in message:
                raise UnknownTrack(f"course {course_id} offers no {mode!r} track (or it has expired)")
            if message.startswith("No course"):
                raise UnknownCourse(f"Open edX has no course {course_id}")
            raise _unexplained(response)
