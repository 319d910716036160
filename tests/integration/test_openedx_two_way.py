"""Both directions at once (ADR 0022), against the fake Open edX over real HTTP, which publishes each of its
changes on the event bus as the LMS does (genuine events, tests/support/openedx_emitter.py): edits made in
the LMS and through courseinfra, on links whose authority is ``both``, with messages lost, duplicated and
reordered and consumers stopped before acknowledging; after the messages and one reconciliation, each
user group equals its legacy group, and no message ever causes another (no loop)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from courseinfra.adapters.legacy.openedx import OpenEdxLegacyGroups
from courseinfra.adapters.openedx_bus.streams import RedisOpenedxBus, SqliteOpenedxBus
from courseinfra.bootstrap import App, bootstrap
from courseinfra.domain.legacy import link_of
from courseinfra.entrypoints.openedx_consumer import consume
from courseinfra.services.groups import GroupDefinition
from courseinfra.services.openedx.ports import OpenedxBus
from courseinfra.settings import Settings
from tests.support.legacy_world import MODES, USERS, add_directory_users
from tests.support.openedx import TOKEN, FakeOpenEdx
from tests.support.openedx_emitter import TOPICS, BusEmitter

COHORTS = ("blue", "red")
STREAMS = sorted(set(TOPICS.values()))
#: Messages the LMS sends for one membership change: a cohort signal and a tracking log at most.
MESSAGES_PER_CHANGE = 2


@dataclass
class Platform:
    """courseinfra on the remote backend, the fake LMS, the bus between them and the emitter."""

    app: App
    fake: FakeOpenEdx
    bus: OpenedxBus
    emitter: BusEmitter
    courses: Iterator[int]

    def link_course(self) -> tuple[str, dict[str, str]]:
        """A new course in the LMS (u1-u6 enrolled) and two user groups linked to two new cohorts of it,
        authority ``both``; returns the course and each group's cohort id."""
        course = f"course-v1:Org+TwoWay+{next(self.courses)}"
        self.fake.seed(course, enrolled=MODES, tracks=["audit", "verified"])
        cohorts = {}
        for name in COHORTS:
            group_id = f"{name}-{course.rsplit('+', 1)[1]}"
            config = {"course_id": course, "authority": "both"}
            criteria = {"type": "legacy_cohort", "operator": "member_of", "config": config}
            # Group names are unique in their scope: each course's pair is named after it.
            title = f"{name.title()} {course.rsplit('+', 1)[1]}"
            self.app.groups.create_group(
                group_id, GroupDefinition(name=title, scope="instance", criteria=criteria)
            )
            with self.app.uow_factory().reading() as uow:
                group = uow.groups.get(group_id)
            link = link_of(group.criteria if group else None)
            assert link is not None
            assert link.legacy_id is not None
            cohorts[group_id] = link.legacy_id
        return course, cohorts

    def members(self, group_id: str) -> set[str]:
        with self.app.uow_factory().reading() as uow:
            return {m.user_id for m in uow.memberships.members(group_id, limit=1000)}

    def consume(self, *, stop_before_ack: bool = False) -> None:
        """Consume what is there; ``stop_before_ack``: read a few entries and stop without applying or
        acknowledging them, as a consumer killed there would (another consumer claims them)."""
        if stop_before_ack:
            self.bus.read(STREAMS, count=3)
            self.bus = self._reopen(f"consumer-{next(self.courses)}")
            self.bus.claim_idle(STREAMS, min_idle_ms=0)
        consume(self.app, self.bus, STREAMS, once=True, count=7)

    def _reopen(self, consumer: str) -> OpenedxBus:
        if isinstance(self.bus, RedisOpenedxBus):
            return RedisOpenedxBus(self.bus.client, self.bus.group, consumer)
        assert isinstance(self.bus, SqliteOpenedxBus)
        return SqliteOpenedxBus(self.path, self.bus.group, consumer)

    @property
    def path(self) -> str:
        return str(self.app.settings.home / "openedx-bus.sqlite3")


@pytest.fixture
def platform(app: App, settings: Settings, openedx: tuple[str, FakeOpenEdx]) -> Iterator[Platform]:
    base_url, fake = openedx
    add_directory_users(app)
    remote = bootstrap(
        settings.model_copy(
            update={"legacy_backend": "openedx", "openedx_url": base_url, "openedx_token": TOKEN}
        )
    )
    assert isinstance(remote.legacy, OpenEdxLegacyGroups)
    bus: OpenedxBus = (
        RedisOpenedxBus.from_url(settings.redis_url, "courseinfra", "consumer-0")
        if settings.redis_url
        else SqliteOpenedxBus(settings.home / "openedx-bus.sqlite3", "courseinfra", "consumer-0")
    )
    emitter = BusEmitter(bus)
    fake.on_change = emitter
    yield Platform(remote, fake, bus, emitter, itertools.count(1))
    fake.on_change = None
    remote.close()


def test_an_lms_edit_reaches_the_group_and_a_courseinfra_edit_echoes_without_a_loop(
    platform: Platform,
) -> None:
    course, cohorts = platform.link_course()
    blue, red = sorted(cohorts, key=lambda g: not g.startswith("blue"))
    legacy = platform.app.legacy
    # In the LMS: u1 into Blue. Two messages (the signal and the tracking log); the group follows.
    legacy.add_to_cohort(course, cohorts[blue], ["u1"])
    assert platform.emitter.sent == MESSAGES_PER_CHANGE
    platform.consume()
    assert platform.members(blue) == {"u1"}
    # Through courseinfra: u2 into Red; the LMS publishes it too (an echo), which changes nothing and
    # causes no message.
    platform.app.groups.change_legacy_members(red, add=["u2"])
    assert platform.members(red) == {"u2"}
    sent = platform.emitter.sent
    assert sent == 2 * MESSAGES_PER_CHANGE
    echoes = counter(platform, "echoes")
    platform.consume()
    assert platform.emitter.sent == sent
    # The cohort signal is recognised as courseinfra's own write (on Red, and on Blue which u2 is not in);
    # the tracking log, which names u2 by a numeric id only, is pulled.
    assert counter(platform, "echoes") - echoes == 2
    assert (platform.members(blue), platform.members(red)) == ({"u1"}, {"u2"})
    # In the LMS, u1 moves to Red: they leave Blue and join Red.
    legacy.add_to_cohort(course, cohorts[red], ["u1"])
    platform.consume()
    assert (platform.members(blue), platform.members(red)) == (set(), {"u1", "u2"})


def counter(platform: Platform, name: str) -> int:
    with platform.app.uow_factory().reading() as uow:
        return int(uow.counters.all().get("openedx-events", {}).get(name, 0))


class TwoWay(RuleBasedStateMachine):
    """Random edits on both sides of two linked cohorts, with messages lost, duplicated and held back
    (reordered), and consumers stopping before acknowledging."""

    def __init__(self, platform: Platform) -> None:
        super().__init__()
        self.platform = platform
        self.course = ""
        self.cohorts: dict[str, str] = {}

    @initialize(
        seed=st.integers(0, 2**16), drop=st.sampled_from([0.0, 0.2]), duplicate=st.sampled_from([0.0, 0.3])
    )
    def start(self, seed: int, drop: float, duplicate: float) -> None:
        emitter = self.platform.emitter
        emitter.rng, emitter.drop, emitter.duplicate, emitter.hold = random.Random(seed), drop, duplicate, 0.2
        self.course, self.cohorts = self.platform.link_course()

    @rule(user=st.sampled_from(USERS), cohort=st.sampled_from(COHORTS))
    def lms_moves(self, user: str, cohort: str) -> None:
        group = f"{cohort}-{self.course.rsplit('+', 1)[1]}"
        before = self.platform.emitter.sent
        self.platform.app.legacy.add_to_cohort(self.course, self.cohorts[group], [user])
        assert self.platform.emitter.sent - before <= 2 * MESSAGES_PER_CHANGE  # duplicated at most

    @rule(user=st.sampled_from(USERS))
    def lms_removes(self, user: str) -> None:
        for cohort_id in self.cohorts.values():
            if user in self.platform.app.legacy.cohort_members(self.course, cohort_id):
                self.platform.app.legacy.remove_from_cohort(self.course, cohort_id, [user])

    @rule(user=st.sampled_from(USERS), cohort=st.sampled_from(COHORTS), add=st.booleans())
    def courseinfra_edits(self, user: str, cohort: str, add: bool) -> None:
        group = f"{cohort}-{self.course.rsplit('+', 1)[1]}"
        if add:
            self.platform.app.groups.change_legacy_members(group, add=[user])
        elif user in self.platform.members(group):
            self.platform.app.groups.change_legacy_members(group, remove=[user])

    @rule(stop=st.booleans())
    def consumer_runs(self, stop: bool) -> None:
        before = self.platform.emitter.sent
        self.platform.consume(stop_before_ack=stop)
        # Applying messages writes nothing to the LMS: no message causes another.
        assert self.platform.emitter.sent == before

    @invariant()
    def every_member_is_known(self) -> None:
        for group in self.cohorts:
            assert self.platform.members(group) <= set(USERS)

    def teardown(self) -> None:
        if not self.cohorts:
            return
        self.platform.emitter.flush()
        self.platform.consume()
        if self.platform.emitter.drop == 0:
            # Nothing lost: the messages alone, whatever their order and repeats, made both sides equal.
            for group, cohort_id in self.cohorts.items():
                assert self.platform.members(group) == self.platform.app.legacy.cohort_members(
                    self.course, cohort_id
                )
        for group in self.cohorts:
            self.platform.app.groups.reconcile(group)
        for group, cohort_id in self.cohorts.items():
            assert self.platform.members(group) == self.platform.app.legacy.cohort_members(
                self.course, cohort_id
            )


@pytest.mark.slow
def test_random_edits_on_both_sides_converge_after_the_messages_and_one_reconciliation(
    platform: Platform,
) -> None:
    def machine() -> TwoWay:
        return TwoWay(platform)

    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=12,
            stateful_step_count=14,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
            derandomize=True,
            print_blob=True,
        ),
    )
