"""Which linked user groups an Open edX event touches, and for which users (ADR 0022).

An event is a trigger: it names legacy groups and, where it can, the users concerned; the intake then
reads those users' legacy membership (a targeted pull) instead of trusting the event's content, so a
duplicate, a reordered or an echoed event changes nothing that the legacy system does not say.

- A cohort membership change (``CohortData``: learner, course, new cohort's name; not the previous
  cohort) touches every cohort link of the course, for that learner: they may have joined one and left
  another.
- An enrolment created, changed or completed (``CourseEnrollmentData``: learner, course, mode) touches
  every track link of the course, for that learner (the track follows the mode); an unenrolment also
  touches the course's cohort and team links that follow enrolment.
- The tracking logs ``edx.cohort.user_added``/``user_removed`` touch the link of that cohort,
  ``edx.team.learner_added``/``learner_removed``, ``edx.team.deleted`` that of that team; as they name
  the learner only by the LMS's numeric id, the whole link is pulled.
- ``edx.cohort.created``, ``edx.team.created`` and ``edx.team.changed`` touch no membership.

A courseinfra user id is the Open edX username (ADR 0012).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from courseinfra.domain.legacy import LegacyKind, LegacyLink
from courseinfra.domain.openedx_events import (
    CohortMembershipChanged,
    EnrollmentEvent,
    OpenedxEvent,
    TrackingLogEmitted,
    UnenrollmentCompleted,
)
from courseinfra.domain.openedx_tracking_logs import (
    CohortUserAdded,
    CohortUserRemoved,
    TeamDeleted,
    TeamLearnerAdded,
    TeamLearnerRemoved,
    read_tracking_log,
)


@dataclass(frozen=True, slots=True)
class Touched:
    """A linked user group an event touches: pull ``users`` only, or the whole link when None.
    ``unenrolled``: touched because the users were unenrolled and its membership follows enrolment
    (they are to leave the legacy group, if still unenrolled there)."""

    group_id: str
    link: LegacyLink
    users: tuple[str, ...] | None
    unenrolled: bool = False


def touched_links(
    event: OpenedxEvent,
    links: Iterable[tuple[str, LegacyLink]],
    *,
    follows_enrolment: frozenset[str] = frozenset(),
) -> list[Touched]:
    """The linked groups (``(group id, link)``) that ``event`` touches, in the order given.
    ``follows_enrolment``: the groups whose membership follows enrolment (an unenrolment touches them)."""
    touched: list[Touched] = []
    if isinstance(event, CohortMembershipChanged):
        user = (event.user.username,)
        touched += [
            Touched(group, link, user)
            for group, link in links
            if link.kind is LegacyKind.COHORT and link.course_id == event.course_key
        ]
    elif isinstance(event, EnrollmentEvent):
        user = (event.user.username,)
        for group, link in links:
            if link.course_id != event.course_key:
                continue
            unenrolled = isinstance(event, UnenrollmentCompleted) or not event.is_active
            if link.kind is LegacyKind.TRACK:
                touched.append(Touched(group, link, user))
            elif unenrolled and group in follows_enrolment:
                touched.append(Touched(group, link, user, unenrolled=True))
    elif isinstance(event, TrackingLogEmitted):
        reading = read_tracking_log(event)
        if isinstance(reading, CohortUserAdded | CohortUserRemoved):
            kind, legacy_id = LegacyKind.COHORT, str(reading.cohort_id)
        elif isinstance(reading, TeamLearnerAdded | TeamLearnerRemoved | TeamDeleted):
            kind, legacy_id = LegacyKind.TEAM, str(reading.team_id)
        else:
            return []
        touched += [
            Touched(group, link, None)
            for group, link in links
            if link.kind is kind and link.course_id == reading.course_key and link.legacy_id == legacy_id
        ]
    return touched
