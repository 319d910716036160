"""Expected echoes (ADR 0022), on every database backend with the local legacy groups: a write of
courseinfra to a legacy group expects its Open edX events; the event that is that write coming back is
consumed without a legacy read, one that is not (a later legacy edit, an echo expired, an echo whose
state the user group no longer has) is pulled as before, and a stale echo never undoes a later
legacy change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from courseinfra.adapters.legacy.local import LocalLegacyGroups
from courseinfra.bootstrap import App
from courseinfra.domain.legacy import Authority, LegacyKind, LegacyLink, LegacyUnavailable, Teamset
from courseinfra.domain.legacy_echoes import ExpectedEcho, is_echo
from courseinfra.domain.openedx_events import (
    CohortMembershipChanged,
    EnrollmentChanged,
    LmsCourse,
    LmsUser,
    OpenedxEvent,
    UnenrollmentCompleted,
)
from courseinfra.entrypoints.api.routers.openedx import COHORT_EVENT_EXAMPLE
from courseinfra.services import enrolments
from courseinfra.services.groups import GroupDefinition, UserGroups
from courseinfra.services.groups.service import LegacyEventsApplied
from tests.support.http import api_client, ok
from tests.support.legacy_links import (
    ENROLLED_AT,
    OPENEDX_COURSE,
    cohort_criteria,
    link_course,
    members,
    track_criteria,
)

COURSE = OPENEDX_COURSE
LEARNERS = ("learner-1", "learner-2", "learner-3")
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
TTL = timedelta(minutes=10)
READS = ("cohort_members", "team_members", "track_members")


def both(criteria: dict[str, Any]) -> dict[str, Any]:
    """The criteria with authority ``both``: courseinfra's edits go to the legacy group, and events pull."""
    criteria["config"]["authority"] = "both"
    return criteria


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def groups(app: App, clock: Clock) -> UserGroups:
    """The cohorts blue and red and the tracks verified and audit of the course, linked under the
    authority ``both``; the user groups' operations on the test's clock."""
    link_course(
        app,
        LEARNERS,
        (
            ("blue", both(cohort_criteria())),
            ("red", both(cohort_criteria())),
            ("verified", both(track_criteria("verified"))),
            ("audit", both(track_criteria("audit"))),
        ),
    )
    return UserGroups(app.uow_factory, app.registry, clock=clock, echo_ttl=TTL)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The calls of the legacy port's member reads (on the class: each unit of work hands out an
    instance bound to its transaction)."""
    counted = dict.fromkeys(READS, 0)
    for name in READS:
        original: Callable[..., Any] = getattr(LocalLegacyGroups, name)

        def counting(*args: Any, _name: str = name, _original: Callable[..., Any] = original) -> Any:
            counted[_name] += 1
            return _original(*args)

        monkeypatch.setattr(LocalLegacyGroups, name, counting)
    return counted


def legacy(app: App) -> LocalLegacyGroups:
    local = app.legacy
    assert isinstance(local, LocalLegacyGroups)
    return local


def learner(user: str) -> LmsUser:
    return LmsUser(
        id=LEARNERS.index(user) + 7, username=user, email=f"{user}@example.org", name=user, is_active=True
    )


def lms_course() -> LmsCourse:
    return LmsCourse(course_key=COURSE, display_name="Demo course", start=None, end=None)


def cohort_changed(user: str, cohort_name: str) -> OpenedxEvent:
    """What the LMS publishes when ``user`` is put in the cohort named ``cohort_name``."""
    return CohortMembershipChanged(user=learner(user), course=lms_course(), cohort_name=cohort_name)


def mode_changed(user: str, mode: str) -> OpenedxEvent:
    return EnrollmentChanged(
        user=learner(user), course=lms_course(), mode=mode, is_active=True, creation_date=ENROLLED_AT
    )


def echoes(app: App, group_id: str, at: datetime = T0) -> dict[str, tuple[bool, str | None]]:
    with app.uow_factory().reading() as uow:
        found = uow.echoes.find(group_id, list(LEARNERS), at)
    return {user: (echo.member, echo.state) for user, echo in found.items()}


def echo_count(app: App) -> int:
    with app.uow_factory().reading() as uow:
        return uow.echoes.count()


def history_length(app: App, group_id: str) -> int:
    with app.uow_factory().reading() as uow:
        return len(uow.memberships.history(group_id, limit=1000))


def cohort_id(app: App, name: str) -> str:
    [cohort] = [c for c in legacy(app).list_cohorts(COURSE) if c.name == name]
    return cohort.cohort_id


# --- what a write expects ----------------------------------------------------------------------------


def test_a_write_to_a_legacy_group_expects_its_echoes(app: App, groups: UserGroups) -> None:
    groups.change_legacy_members("blue", add=["learner-1", "learner-2"])
    # The cohort they joined, and every other cohort link of the course: the event names Blue.
    assert echoes(app, "blue") == {"learner-1": (True, "Blue"), "learner-2": (True, "Blue")}
    assert echoes(app, "red") == {"learner-1": (False, "Blue"), "learner-2": (False, "Blue")}
    with app.uow_factory().reading() as uow:
        assert {e.expires_at for e in uow.echoes.find("blue", ["learner-1"], T0).values()} == {T0 + TTL}
    # A removal: the user is in no cohort (no event names that but a tracking log).
    groups.change_legacy_members("blue", remove=["learner-2"])
    assert echoes(app, "blue") == {"learner-1": (True, "Blue"), "learner-2": (False, None)}
    # A track change: the track joined, and the course's other track links.
    groups.change_legacy_members("verified", add=["learner-3"])
    assert echoes(app, "verified") == {"learner-3": (True, "verified")}
    assert echoes(app, "audit") == {"learner-3": (False, "verified")}
    # A create with an include list, and an update of it.
    groups.create_group(
        "green",
        GroupDefinition(
            name="Green", scope="instance", criteria=both(cohort_criteria()), include=("learner-3",)
        ),
    )
    assert echoes(app, "green") == {"learner-3": (True, "Green")}
    assert echoes(app, "blue")["learner-3"] == echoes(app, "red")["learner-3"] == (False, "Green")
    groups.update_group("green", expected_version=None, include=["learner-2"])
    assert echoes(app, "green") == {"learner-2": (True, "Green"), "learner-3": (False, None)}
    # A team: added to, then removed from it (no event but a tracking log names a team's members).
    legacy(app).configure_teamset(Teamset("projects", COURSE, "Projects"))
    team = {
        "type": "legacy_team",
        "operator": "member_of",
        "config": {"course_id": COURSE, "teamset_id": "projects"},
    }
    groups.create_group("team", GroupDefinition(name="Team", scope="instance", criteria=both(team)))
    groups.change_legacy_members("team", add=["learner-1", "learner-2"])
    groups.change_legacy_members("team", remove=["learner-2"])
    assert echoes(app, "team") == {"learner-1": (True, None), "learner-2": (False, None)}


def test_an_unenrolment_and_a_reconciliation_expect_the_echoes_of_their_writes(
    app: App, groups: UserGroups
) -> None:
    # A cohort that follows enrolment: the unenrolled learner leaves it, through courseinfra.
    follows = both(cohort_criteria())
    follows["config"]["follow_enrolment"] = True
    groups.create_group("cyan", GroupDefinition(name="Cyan", scope="instance", criteria=follows))
    groups.change_legacy_members("cyan", add=["learner-1", "learner-2"])
    enrolments.unenrol("learner-1", "demo-batch", app.uow_factory(), at=T0)
    groups.apply_legacy_event(
        UnenrollmentCompleted(
            user=learner("learner-1"),
            course=lms_course(),
            mode="audit",
            is_active=False,
            creation_date=ENROLLED_AT,
        )
    )
    assert set(members(app, "cyan")) == {"learner-2"}
    assert echoes(app, "cyan") == {"learner-1": (False, None), "learner-2": (True, "Cyan")}
    # A push of a user_group link: the user group's member the LMS removed is added back.
    plain = cohort_criteria()
    plain["config"]["authority"] = "user_group"
    groups.create_group(
        "navy", GroupDefinition(name="Navy", scope="instance", criteria=plain, include=("learner-3",))
    )
    legacy(app).remove_from_cohort(COURSE, cohort_id(app, "Navy"), ["learner-3"])  # an LMS edit
    with app.uow_factory() as uow:
        uow.echoes.clear("navy")
        uow.commit()
    [fixed] = groups.reconcile("navy")
    assert (fixed.action, fixed.added, fixed.fixed) == ("push", 1, True)
    assert echoes(app, "navy") == {"learner-3": (True, "Navy")}


def test_a_cohort_name_that_cannot_be_read_fails_no_write(
    app: App, groups: UserGroups, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The echo of a cohort add names the cohort, read after the write: should that read fail, the write
    stands and its echo names nothing (the event will be pulled)."""

    def unavailable(*args: Any) -> Any:
        raise LegacyUnavailable("injected: the LMS answered 503")

    monkeypatch.setattr(LocalLegacyGroups, "get_cohort", unavailable)
    groups.change_legacy_members("blue", add=["learner-1"])
    assert members(app, "blue") == {"learner-1": "legacy-members-changed"}
    assert echoes(app, "blue") == {"learner-1": (True, None)}
    assert echoes(app, "red") == {"learner-1": (False, None)}


# --- what an event does with them --------------------------------------------------------------------


@pytest.mark.parametrize("authority", ["both", "user_group"])
def test_the_event_of_a_write_is_consumed_without_a_legacy_read(
    app: App, groups: UserGroups, reads: dict[str, int], authority: str
) -> None:
    criteria = cohort_criteria()
    criteria["config"]["authority"] = authority
    for group_id in ("pink", "grey"):
        groups.create_group(
            group_id, GroupDefinition(name=group_id.title(), scope="instance", criteria=criteria)
        )
    groups.change_legacy_members("pink", add=["learner-1"])
    before = {group_id: history_length(app, group_id) for group_id in ("blue", "red", "pink", "grey")}
    reads.update(dict.fromkeys(READS, 0))
    # The LMS publishes the write: learner-1 is in Pink. Every cohort link of the course is touched,
    # each for that learner, and each expected it.
    assert groups.apply_legacy_batch([cohort_changed("learner-1", "Pink")]) == LegacyEventsApplied(0, 4)
    assert reads == dict.fromkeys(READS, 0)
    assert members(app, "pink") == {"learner-1": "legacy-members-changed"}
    assert {g: history_length(app, g) for g in before} == before
    assert echo_count(app) == 0
    # The same state said again (another message) is no echo: consumed once, it is pulled.
    assert groups.apply_legacy_batch([cohort_changed("learner-1", "Pink")]) == LegacyEventsApplied(4, 0)
    assert reads["cohort_members"] == 4
    assert members(app, "pink") == {"learner-1": "legacy-members-changed"}


def test_the_event_of_a_track_change_is_consumed_without_a_legacy_read(
    app: App, groups: UserGroups, reads: dict[str, int]
) -> None:
    groups.change_legacy_members("verified", add=["learner-2"])
    reads.update(dict.fromkeys(READS, 0))
    assert groups.apply_legacy_batch([mode_changed("learner-2", "verified")]) == LegacyEventsApplied(0, 2)
    assert reads == dict.fromkeys(READS, 0)
    assert "learner-2" in members(app, "verified")
    assert "learner-2" not in members(app, "audit")


def test_a_later_legacy_edit_of_the_same_user_is_pulled(
    app: App, groups: UserGroups, reads: dict[str, int]
) -> None:
    groups.change_legacy_members("blue", add=["learner-1"])
    assert groups.apply_legacy_batch([cohort_changed("learner-1", "Blue")]) == LegacyEventsApplied(0, 2)
    # The LMS moves learner-1 to Red: its event is no echo, and is pulled.
    legacy(app).add_to_cohort(COURSE, cohort_id(app, "Red"), ["learner-1"])
    reads.update(dict.fromkeys(READS, 0))
    assert groups.apply_legacy_batch([cohort_changed("learner-1", "Red")]) == LegacyEventsApplied(2, 0)
    assert reads["cohort_members"] == 2
    assert (members(app, "blue"), members(app, "red")) == ({}, {"learner-1": "legacy-event"})
    # In one batch: the echo of a write, then a legacy edit of another user of the same link.
    groups.change_legacy_members("blue", add=["learner-2"])
    legacy(app).add_to_cohort(COURSE, cohort_id(app, "Blue"), ["learner-3"])
    reads.update(dict.fromkeys(READS, 0))
    found = groups.apply_legacy_batch(
        [cohort_changed("learner-2", "Blue"), cohort_changed("learner-3", "Blue")]
    )
    assert found == LegacyEventsApplied(2, 2)
    assert reads["cohort_members"] == 2
    assert set(members(app, "blue")) == {"learner-2", "learner-3"}


def test_an_expired_echo_is_not_used_and_is_pruned(
    app: App, groups: UserGroups, clock: Clock, reads: dict[str, int]
) -> None:
    groups.change_legacy_members("blue", add=["learner-1"])
    clock.now = T0 + TTL
    reads.update(dict.fromkeys(READS, 0))
    assert groups.apply_legacy_batch([cohort_changed("learner-1", "Blue")]) == LegacyEventsApplied(2, 0)
    assert reads["cohort_members"] == 2
    assert members(app, "blue") == {"learner-1": "legacy-members-changed"}
    # The next write prunes what expired: only its own echoes are left.
    assert echo_count(app) == 2
    groups.change_legacy_members("verified", add=["learner-2"])
    assert echo_count(app) == 2
    assert echoes(app, "verified", clock.now) == {"learner-2": (True, "verified")}


def test_a_stale_echo_does_not_undo_a_later_legacy_change(
    app: App, groups: UserGroups, reads: dict[str, int]
) -> None:
    # courseinfra puts learner-1 in Blue; the LMS then moves them to Red. The echo of Blue arrives
    # first: consumed, nothing read or written; Red's event then pulls Red.
    groups.change_legacy_members("blue", add=["learner-1"])
    legacy(app).add_to_cohort(COURSE, cohort_id(app, "Red"), ["learner-1"])
    written = {g: history_length(app, g) for g in ("blue", "red")}
    reads.update(dict.fromkeys(READS, 0))
    assert groups.apply_legacy_batch([cohort_changed("learner-1", "Blue")]) == LegacyEventsApplied(0, 2)
    assert reads == dict.fromkeys(READS, 0)
    assert {g: history_length(app, g) for g in written} == written
    groups.apply_legacy_batch([cohort_changed("learner-1", "Red")])
    assert (members(app, "blue"), members(app, "red")) == ({}, {"learner-1": "legacy-event"})


def test_a_stale_echo_arriving_after_the_later_change_is_pulled_and_changes_nothing(
    app: App, groups: UserGroups, reads: dict[str, int]
) -> None:
    # The same, the messages reordered: Red's event first (pulled), then the echo of Blue. The user
    # group no longer has the state the echo records: it is no echo, and the pull finds Red.
    groups.change_legacy_members("blue", add=["learner-1"])
    legacy(app).add_to_cohort(COURSE, cohort_id(app, "Red"), ["learner-1"])
    assert groups.apply_legacy_batch([cohort_changed("learner-1", "Red")]) == LegacyEventsApplied(2, 0)
    written = {g: history_length(app, g) for g in ("blue", "red")}
    assert groups.apply_legacy_batch([cohort_changed("learner-1", "Blue")]) == LegacyEventsApplied(2, 0)
    assert {g: history_length(app, g) for g in written} == written
    assert (members(app, "blue"), members(app, "red")) == ({}, {"learner-1": "legacy-event"})
    # One batch with both, in either order, ends the same way.
    groups.change_legacy_members("blue", add=["learner-1"])
    legacy(app).add_to_cohort(COURSE, cohort_id(app, "Red"), ["learner-1"])
    groups.apply_legacy_batch([cohort_changed("learner-1", "Red"), cohort_changed("learner-1", "Blue")])
    assert (members(app, "blue"), members(app, "red")) == ({}, {"learner-1": "legacy-event"})


def test_the_intake_counts_the_echoes_it_consumed(app: App) -> None:
    """Through the webhook (the bootstrapped intake): learner-1 put in Blue by courseinfra, the LMS's
    event of it (the route's example) is an echo on both cohort links, and nothing is pulled."""
    link_course(app, ("learner-1",), (("blue", both(cohort_criteria())), ("red", both(cohort_criteria()))))
    app.groups.change_legacy_members("blue", add=["learner-1"])
    answer = ok(
        api_client(app, role="ingest").post(
            "/v1/openedx/events", json=COHORT_EVENT_EXAMPLE, headers={"content-type": "application/json"}
        )
    )
    assert answer["jobs"]["openedx-events"] == {
        "total": 1,
        "success": 1,
        "applied": 1,
        "links-pulled": 0,
        "echoes": 2,
    }
    assert members(app, "blue") == {"learner-1": "legacy-members-changed"}


def test_an_echo_is_matched_on_the_state_it_records_only() -> None:
    """The domain's rule: a cohort event naming the cohort the echo records, an active enrolment with its
    mode; not an unenrolment, not another course, not an expired echo, not a state no event names."""
    cohort = LegacyLink(LegacyKind.COHORT, COURSE, "12", authority=Authority.BOTH)
    track = LegacyLink(LegacyKind.TRACK, COURSE, "verified", authority=Authority.BOTH)
    blue = ExpectedEcho("g", "learner-1", True, "Blue", T0 + TTL)
    assert is_echo(cohort_changed("learner-1", "Blue"), cohort, blue, T0)
    assert not is_echo(cohort_changed("learner-1", "Red"), cohort, blue, T0)
    assert not is_echo(cohort_changed("learner-1", "Blue"), cohort, blue, T0 + TTL)
    assert not is_echo(cohort_changed("learner-1", "Blue"), track, blue, T0)
    other = LegacyLink(LegacyKind.COHORT, "course-v1:Other+X+1", "12")
    assert not is_echo(cohort_changed("learner-1", "Blue"), other, blue, T0)
    assert not is_echo(
        cohort_changed("learner-1", "Blue"), cohort, ExpectedEcho("g", "learner-1", False, None, T0 + TTL), T0
    )
    verified = ExpectedEcho("v", "learner-1", True, "verified", T0 + TTL)
    assert is_echo(mode_changed("learner-1", "verified"), track, verified, T0)
    assert not is_echo(mode_changed("learner-1", "audit"), track, verified, T0)
    gone = UnenrollmentCompleted(
        user=learner("learner-1"),
        course=lms_course(),
        mode="verified",
        is_active=False,
        creation_date=ENROLLED_AT,
    )
    assert not is_echo(gone, track, verified, T0)
