"""The Open edX consumer as real processes (ADR 0022): consumers killed with SIGKILL at random moments,
then resumed, and two consumers of one group at once, leave the linked groups as the legacy groups are,
every entry acknowledged and every event applied exactly once (by its envelope id)."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from courseinfra.adapters.legacy.local import LocalLegacyGroups
from courseinfra.adapters.openedx_bus.wire import encode_entry, envelope_for
from courseinfra.adapters.sql.tables import openedx_events_applied
from courseinfra.bootstrap import App
from courseinfra.domain.openedx_events import CohortMembershipChanged, LmsCourse, LmsUser, OpenedxMessage
from courseinfra.entrypoints.openedx_consumer import open_bus
from courseinfra.services.openedx.ports import OpenedxBus
from courseinfra.settings import Settings
from tests.support.cli import COURSEINFRA, Cli
from tests.support.legacy_links import OPENEDX_COURSE, cohort_criteria, link_course, members

pytestmark = pytest.mark.slow

LEARNERS = [f"learner-{n:03d}" for n in range(1, 61)]
COHORTS = ("blue", "red")
TOPIC = "learning-cohort-membership"


@pytest.fixture
def bus_settings(settings: Settings) -> Settings:
    """The bus beside the backend: Redis streams with PostgreSQL, the embedded file otherwise."""
    return settings.model_copy(update={"openedx_bus": "redis" if settings.redis_url else "embedded"})


@pytest.fixture
def world(app: App, bus_settings: Settings) -> Iterator[tuple[App, OpenedxBus, dict[str, str], Cli]]:
    ids = link_course(app, LEARNERS, [(name, cohort_criteria()) for name in COHORTS])
    bus = open_bus(bus_settings, "producer")
    cli = Cli(bus_settings)
    cli.env["COURSEINFRA_OPENEDX_BUS"] = bus_settings.openedx_bus
    yield app, bus, ids, cli
    bus.close()


def put_everyone_in_a_cohort_and_send_their_events(
    app: App, bus: OpenedxBus, ids: dict[str, str], rng: random.Random
) -> dict[str, set[str]]:
    """What the LMS does: each learner into a cohort (some moved twice), one event per change, in the
    order made. Returns each cohort's final members."""
    legacy = app.legacy
    assert isinstance(legacy, LocalLegacyGroups)
    course = LmsCourse(course_key=OPENEDX_COURSE, display_name="Demo course", start=None, end=None)
    final: dict[str, str] = {}
    moves = [(user, rng.choice(COHORTS)) for user in LEARNERS] + [
        (rng.choice(LEARNERS), rng.choice(COHORTS)) for _ in range(30)
    ]
    for number, (user, cohort) in enumerate(moves):
        legacy.add_to_cohort(OPENEDX_COURSE, ids[cohort], [user])
        final[user] = cohort
        lms_user = LmsUser(
            id=1000 + number, username=user, email=f"{user}@example.org", name=user, is_active=True
        )
        event = CohortMembershipChanged(user=lms_user, course=course, cohort_name=cohort.title())
        bus.send(TOPIC, encode_entry(OpenedxMessage(envelope_for(event), event)))
    return {cohort: {u for u, c in final.items() if c == cohort} for cohort in COHORTS}


def start_consumer(cli: Cli, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*COURSEINFRA, "openedx", "consume", "--consumer", name, "--count", "3", "--topic", TOPIC],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def applied_ids(app: App) -> int:
    with app.engine.connect() as connection:
        return int(connection.scalar(sa.select(sa.func.count()).select_from(openedx_events_applied)) or 0)


def drain(cli: Cli, name: str) -> dict[str, int]:
    done = subprocess.run(
        [*COURSEINFRA, "openedx", "consume", "--once", "--consumer", name, "--topic", TOPIC],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return dict(json.loads(done.stdout))


def test_consumers_killed_at_random_moments_then_resumed_leave_the_legacy_state(
    world: tuple[App, OpenedxBus, dict[str, str], Cli],
) -> None:
    app, bus, ids, cli = world
    rng = random.Random(20261206)
    expected = put_everyone_in_a_cohort_and_send_their_events(app, bus, ids, rng)
    kills = 0
    total = len(LEARNERS) + 30
    for _ in range(4):
        # Killed once it has applied a few more events: mid-work, at a moment drawn at random.
        target = min(total - 1, applied_ids(app) + rng.randint(3, 20))
        consumer = start_consumer(cli, "worker")
        deadline = time.monotonic() + 60
        while applied_ids(app) < target and consumer.poll() is None and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.005, 0.05))
        if consumer.poll() is None:
            consumer.kill()
            kills += 1
        consumer.communicate(timeout=60)
    assert kills >= 3
    drained = drain(cli, "worker")
    assert drained["not_applied"] >= 0
    assert {cohort: set(members(app, cohort)) for cohort in COHORTS} == expected
    assert bus.pending(TOPIC) == 0
    # Every event applied once: one row per envelope id, whatever was redelivered.
    assert applied_ids(app) == len(LEARNERS) + 30


def test_two_consumers_of_one_group_share_the_stream_and_apply_each_event_once(
    world: tuple[App, OpenedxBus, dict[str, str], Cli],
) -> None:
    app, bus, ids, cli = world
    expected = put_everyone_in_a_cohort_and_send_their_events(app, bus, ids, random.Random(7))
    first, second = start_consumer(cli, "one"), start_consumer(cli, "two")
    deadline = time.monotonic() + 120
    while bus.pending(TOPIC) or applied_ids(app) < len(LEARNERS) + 30:
        assert time.monotonic() < deadline, "the consumers did not finish in 120 s"
        time.sleep(0.5)
    for consumer in (first, second):
        consumer.terminate()
        _out, err = consumer.communicate(timeout=60)
        assert "Traceback" not in err, err
    assert {cohort: set(members(app, cohort)) for cohort in COHORTS} == expected
    assert applied_ids(app) == len(LEARNERS) + 30
