"""Which linked user groups an Open edX event touches, and for which users (ADR 0022)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from courseinfra.domain.legacy import LegacyKind, LegacyLink
from courseinfra.domain.legacy_events import Touched, touched_links
from courseinfra.domain.openedx_events import (
    CohortMembershipChanged,
    EnrollmentChanged,
    EnrollmentCreated,
    LmsCourse,
    LmsUser,
    TrackingLogEmitted,
    UnenrollmentCompleted,
)

COURSE, OTHER = "course-v1:DemoX+CI101+2026", "course-v1:DemoX+CI102+2026"
LEARNER = LmsUser(id=9, username="learner-1", email="l1@example.org", name="L One", is_active=True)
DEMO = LmsCourse(course_key=COURSE, display_name="Demo", start=None, end=None)
AT = datetime(2026, 9, 3, 12, tzinfo=UTC)

BLUE = LegacyLink(LegacyKind.COHORT, COURSE, "31")
RED = LegacyLink(LegacyKind.COHORT, COURSE, "32")
ELSEWHERE = LegacyLink(LegacyKind.COHORT, OTHER, "31")
TEAM = LegacyLink(LegacyKind.TEAM, COURSE, "team-a", teamset_id="projects")
VERIFIED = LegacyLink(LegacyKind.TRACK, COURSE, "verified")
AUDIT = LegacyLink(LegacyKind.TRACK, COURSE, "audit")
LINKS = [
    ("blue", BLUE),
    ("red", RED),
    ("elsewhere", ELSEWHERE),
    ("team", TEAM),
    ("verified", VERIFIED),
    ("audit", AUDIT),
]


def groups(touched: list[Touched]) -> list[tuple[str, tuple[str, ...] | None]]:
    return [(t.group_id, t.users) for t in touched]


def enrolment(
    cls: type[EnrollmentCreated | EnrollmentChanged | UnenrollmentCompleted], active: bool
) -> object:
    return cls(user=LEARNER, course=DEMO, mode="verified", is_active=active, creation_date=AT)


def tracking(name: str, data: dict[str, object]) -> TrackingLogEmitted:
    return TrackingLogEmitted(name=name, timestamp=AT, data=data, context={"course_id": COURSE, "user_id": 9})


def test_a_cohort_change_touches_every_cohort_of_its_course_for_its_learner() -> None:
    event = CohortMembershipChanged(user=LEARNER, course=DEMO, cohort_name="Blue")
    assert groups(touched_links(event, LINKS)) == [("blue", ("learner-1",)), ("red", ("learner-1",))]


def test_enrolments_touch_the_tracks_and_an_unenrolment_the_groups_that_follow_it() -> None:
    for cls in (EnrollmentCreated, EnrollmentChanged):
        event = enrolment(cls, True)
        assert groups(touched_links(event, LINKS, follows_enrolment=frozenset({"blue"}))) == [  # type: ignore[arg-type]
            ("verified", ("learner-1",)),
            ("audit", ("learner-1",)),
        ]
    for event in (enrolment(UnenrollmentCompleted, False), enrolment(EnrollmentChanged, False)):
        touched = touched_links(event, LINKS, follows_enrolment=frozenset({"blue", "team"}))  # type: ignore[arg-type]
        assert groups(touched) == [
            ("blue", ("learner-1",)),
            ("team", ("learner-1",)),
            ("verified", ("learner-1",)),
            ("audit", ("learner-1",)),
        ]


def test_tracking_logs_touch_the_whole_link_of_the_cohort_or_team_they_name() -> None:
    added = tracking("edx.cohort.user_added", {"cohort_id": 31, "cohort_name": "Blue", "user_id": 9})
    assert groups(touched_links(added, LINKS)) == [("blue", None)]
    removed = tracking("edx.cohort.user_removed", {"cohort_id": 32, "cohort_name": "Red", "user_id": 9})
    assert groups(touched_links(removed, LINKS)) == [("red", None)]
    joined = tracking(
        "edx.team.learner_added", {"team_id": "team-a", "user_id": 9, "add_method": "joined_from_team_view"}
    )
    assert groups(touched_links(joined, LINKS)) == [("team", None)]
    gone = tracking("edx.team.deleted", {"team_id": "team-a"})
    assert groups(touched_links(gone, LINKS)) == [("team", None)]
    unlinked = tracking("edx.team.learner_added", {"team_id": "team-z", "user_id": 9, "add_method": "x"})
    assert touched_links(unlinked, LINKS) == []


def test_what_changes_no_membership_touches_nothing() -> None:
    created = tracking("edx.cohort.created", {"cohort_id": 40, "cohort_name": "Green"})
    renamed = tracking(
        "edx.team.changed", {"team_id": "team-a", "field": "name", "old": "A", "new": "B", "truncated": []}
    )
    broken = TrackingLogEmitted(
        name="edx.cohort.user_added", timestamp=AT, data={"nope": json.dumps(1)}, context={}
    )
    for event in (created, renamed, broken):
        assert touched_links(event, LINKS) == []
