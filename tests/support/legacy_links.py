"""A course with user groups linked to its local legacy groups, for the Open edX intake's tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from courseinfra.adapters.legacy.local import LocalLegacyGroups
from courseinfra.bootstrap import App
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.legacy import Track, link_of
from courseinfra.services import content, enrolments
from courseinfra.services.groups import GroupDefinition
from tests.support.builders import collection, directory_users, leaf

#: The course of the conformance entries of Open edX's event bus.
OPENEDX_COURSE = "course-v1:DemoX+CI101+2026"
ENROLLED_AT = datetime(2026, 9, 2, 9, 0, tzinfo=UTC)


def cohort_criteria(course: str = OPENEDX_COURSE) -> dict[str, Any]:
    """A cohort link whose legacy group is the authority: an Open edX event about it pulls (ADR 0022;
    under the default authority, user_group, it would be recorded as drift)."""
    return {
        "type": "legacy_cohort",
        "operator": "member_of",
        "config": {"course_id": course, "authority": "legacy"},
    }


def track_criteria(mode: str, course: str = OPENEDX_COURSE) -> dict[str, Any]:
    """A track link whose legacy group is the authority (see :func:`cohort_criteria`)."""
    return {
        "type": "legacy_track",
        "operator": "member_of",
        "config": {"course_id": course, "mode": mode, "authority": "legacy"},
    }


def link_course(
    app: App,
    learners: Sequence[str] = ("learner-1", "learner-2"),
    groups: Sequence[tuple[str, dict[str, Any]]] = (
        ("blue", cohort_criteria()),
        ("red", cohort_criteria()),
        ("verified", track_criteria("verified")),
    ),
    course: str = OPENEDX_COURSE,
) -> dict[str, str]:
    """The course stored and published (the local legacy groups know only stored courses), the
    ``learners`` in the directory and enrolled (audit), the audit and verified tracks offered, and the
    user groups ``groups`` (id, criteria) created, each linked to its new legacy group (a cohort is
    named after the group's title); returns each group's legacy id."""
    hierarchy = collection(course, collection("unit-1", leaf("r1")), visibility="Default", name="Demo course")
    content.put_hierarchy(hierarchy, app.uow_factory())
    content.publish(course, app.uow_factory())
    batch = "demo-batch" if course == OPENEDX_COURSE else f"batch-{course}"
    enrolments.create_batch(CourseBatch(batch, course, "Demo batch", ENROLLED_AT), app.uow_factory())
    directory_users(app, *learners)
    for user in learners:
        enrolments.enrol(user, batch, app.uow_factory(), at=ENROLLED_AT, mode="audit")
    legacy = app.legacy
    assert isinstance(legacy, LocalLegacyGroups)
    legacy.offer_tracks(course, [Track(course, "audit", "Audit"), Track(course, "verified", "Verified")])
    ids = {}
    for group_id, criteria in groups:
        app.groups.create_group(
            group_id, GroupDefinition(name=group_id.title(), scope="instance", criteria=criteria)
        )
        with app.uow_factory().reading() as uow:
            group = uow.groups.get(group_id)
        link = link_of(group.criteria if group else None)
        assert link is not None
        assert link.legacy_id is not None
        ids[group_id] = link.legacy_id
    return ids


def members(app: App, group_id: str) -> dict[str, str]:
    """A user group's members with their reasons."""
    with app.uow_factory().reading() as uow:
        return {m.user_id: m.reason for m in uow.memberships.members(group_id, limit=100_000)}
