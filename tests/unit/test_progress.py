"""The aggregator's pure rules: examples from the seed, and properties over random event streams."""

from __future__ import annotations

from datetime import UTC, datetime
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from courseinfra.domain.aggregator import NOT_ENROLLED, plan_batch
from courseinfra.domain.events import AuditEventEmitted
from courseinfra.domain.hierarchy import compute_relations, parse_hierarchy
from courseinfra.domain.job_requests import (
    EnrolmentUpdateRequest,
    Outcome,
    Rejection,
    read_enrolment_update,
    root_partition_of,
)
from courseinfra.domain.progress import (
    AuditAction,
    AuditObject,
    AuditRecord,
    ContentUpdate,
    CourseView,
    EnrolmentKey,
    EnrolmentState,
    EnrolmentStatus,
    aggregate,
    epoch_ms,
    recompute,
)
from tests.support.builders import collection, leaf

KEY = EnrolmentKey("u1", "course", "b1")
NOW = datetime(2026, 11, 22, tzinfo=UTC)
TREE = collection(
    "course",
    collection("unit1", leaf("r1"), leaf("r2")),
    collection("unit2", leaf("r3"), collection("unit2.1", leaf("r4"), leaf("r5", optional=True))),
    leaf("r1"),
    visibility="Default",
)
RELATIONS = compute_relations(parse_hierarchy(TREE))
VIEW = CourseView("course", RELATIONS.leaf_nodes, RELATIONS.optional_nodes, RELATIONS.ancestors)
LEAVES = sorted(RELATIONS.ancestors)


def run(events: list[list[ContentUpdate]]) -> tuple[EnrolmentState, set[tuple[str, ...]], list[int]]:
    """Apply micro-batches in order; every AUDIT event is emitted once (a second emission fails)."""
    state = EnrolmentState(KEY)
    emitted: set[tuple[str, ...]] = set()
    percentages = []
    for batch in events:
        result = aggregate(state, batch, VIEW, NOW)
        state = result.state
        keys = [record.key for record in result.audits]
        assert emitted.isdisjoint(keys)
        assert len(set(keys)) == len(keys)
        emitted |= set(keys)
        percentages.append(state.completion_percentage)
    return state, emitted, percentages


def audits(emitted: set[tuple[str, ...]]) -> set[tuple[str, str, str]]:
    return {(object_type, object_id, action) for *_, object_type, object_id, action in emitted}


def test_optional_leaves_do_not_count_toward_completion() -> None:
    state, emitted, _ = run([[ContentUpdate(c, 2) for c in ("r1", "r2", "r3", "r4")]])
    assert VIEW.required("course") == {"r1", "r2", "r3", "r4"}
    assert (state.status, state.progress, state.completion_percentage) == (EnrolmentStatus.COMPLETED, 4, 100)
    assert state.completed_on == NOW
    assert ("Course", "course", "complete") in audits(emitted)
    assert ("CourseUnit", "unit2.1", "complete") in audits(emitted)


def test_first_consumption_enrols_starts_and_measures_units() -> None:
    result = aggregate(EnrolmentState(KEY), [ContentUpdate("r3", 2)], VIEW, NOW)
    assert {(r.object_type, r.object_id, r.action) for r in result.audits} == {
        (AuditObject.COURSE, "course", AuditAction.ENROL),
        (AuditObject.COURSE_UNIT, "unit2", AuditAction.START),
        (AuditObject.CONTENT, "r3", AuditAction.START),
        (AuditObject.CONTENT, "r3", AuditAction.COMPLETE),
    }
    metrics = {
        (m.activity_type, m.activity_id): (m.completed_count, m.leaf_nodes_count, m.progress)
        for m in result.metrics
    }
    assert metrics == {("Course", "course"): (1, 4, 25), ("CourseUnit", "unit2"): (1, 2, 50)}
    assert result.state.status is EnrolmentStatus.IN_PROGRESS


def test_a_status_never_goes_down() -> None:
    state, _, _ = run([[ContentUpdate("r1", 2)], [ContentUpdate("r1", 1)], [ContentUpdate("r1", 0)]])
    assert state.content_status == {"r1": 2}
    assert state.last_read_content_id == "r1"
    assert state.last_read_content_status == 2


def test_percentage_is_floored_so_100_means_complete() -> None:
    tree = collection("course", *(leaf(f"r{i}") for i in range(200)), visibility="Default")
    relations = compute_relations(parse_hierarchy(tree))
    view = CourseView("course", relations.leaf_nodes, relations.optional_nodes, relations.ancestors)
    result = aggregate(EnrolmentState(KEY), [ContentUpdate(f"r{i}", 2) for i in range(199)], view, NOW)
    assert result.state.completion_percentage == 99
    assert result.state.status is EnrolmentStatus.IN_PROGRESS


def test_contents_outside_the_course_are_kept_but_do_not_count() -> None:
    result = aggregate(EnrolmentState(KEY), [ContentUpdate("elsewhere", 2)], VIEW, NOW)
    assert result.state.content_status == {"elsewhere": 2}
    assert result.state.progress == 0
    assert result.audits == ()


def test_requests_are_read_or_rejected_with_a_reason() -> None:
    def edata(**fields: object) -> dict[str, object]:
        base: dict[str, object] = {
            "action": "batch-enrolment-update",
            "userId": "u",
            "courseId": "c",
            "batchId": "b",
        }
        return {"edata": {**base, **fields}}

    good = read_enrolment_update(edata(contents=[{"contentId": "r1", "status": 2}]))
    assert isinstance(good, EnrolmentUpdateRequest)
    assert good.contents == (ContentUpdate("r1", 2),)
    for event, code in [
        (edata(contents=[{"contentId": "r1", "status": 3}]), "invalid-status"),
        (edata(contents=[{"contentId": "r1", "status": "2"}]), "invalid-status"),
        (edata(contents=[{"contentId": "r1", "status": True}]), "invalid-status"),
        (edata(contents=[{"status": 1}]), "invalid-contents"),
        (edata(contents=[]), "missing-contents"),
        (edata(userId=" ", contents=[{"contentId": "r1", "status": 1}]), "missing-field"),
        ({"edata": {"action": "other"}}, "not-enrolment-update"),
    ]:
        rejected = read_enrolment_update(event)
        assert isinstance(rejected, Rejection)
        assert rejected.code == code


updates = st.lists(
    st.lists(
        st.builds(ContentUpdate, st.sampled_from([*LEAVES, "stray"]), st.integers(0, 2)),
        min_size=1,
        max_size=4,
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(updates)
def test_progress_stays_within_bounds_and_never_decreases(events: list[list[ContentUpdate]]) -> None:
    state, _, percentages = run(events)
    assert all(0 <= p <= 100 for p in percentages)
    assert percentages == sorted(percentages)
    assert 0 <= state.progress <= len(VIEW.required("course"))
    assert (state.completion_percentage == 100) == (state.status is EnrolmentStatus.COMPLETED)


@settings(max_examples=300, deadline=None)
@given(updates, st.randoms(use_true_random=False), st.integers(0, 3))
def test_any_order_or_duplication_gives_the_same_state_and_audit_set(
    events: list[list[ContentUpdate]], random: Random, duplicates: int
) -> None:
    flat = [update for batch in events for update in batch]
    shuffled = flat + [flat[i % len(flat)] for i in range(duplicates)]
    random.shuffle(shuffled)
    regrouped = [shuffled[i : i + 3] for i in range(0, len(shuffled), 3)]
    first, first_audits, _ = run(events)
    second, second_audits, _ = run(regrouped)
    assert first.content_status == second.content_status
    assert (first.status, first.progress, first.completion_percentage) == (
        second.status,
        second.progress,
        second.completion_percentage,
    )
    assert first_audits == second_audits


@settings(max_examples=200, deadline=None)
@given(updates)
def test_audit_conditions_hold_in_the_final_state(events: list[list[ContentUpdate]]) -> None:
    state, emitted, _ = run(events)
    completed = {c for c, s in state.content_status.items() if s == 2}
    for object_type, object_id, action in audits(emitted):
        if object_type == "Content":
            assert state.content_status[object_id] >= (2 if action == "complete" else 1)
        if object_type == "CourseUnit" and action == "complete":
            assert VIEW.required(object_id) <= completed
        if object_type == "Course" and action == "complete":
            assert state.status is EnrolmentStatus.COMPLETED


def test_a_batch_plan_applies_every_request_of_an_enrolment_and_rejects_the_rest() -> None:
    other = EnrolmentKey("u2", "course", "b1")
    unknown_course = EnrolmentKey("u3", "gone", "b9")
    requests = {
        KEY: [
            EnrolmentUpdateRequest(KEY, (ContentUpdate("r1", 2),)),
            EnrolmentUpdateRequest(KEY, (ContentUpdate("r2", 2),)),
        ],
        other: [EnrolmentUpdateRequest(other, (ContentUpdate("r1", 1),))],
        unknown_course: [EnrolmentUpdateRequest(unknown_course, (ContentUpdate("x", 2),))],
    }
    missing_course = Rejection(Outcome.FAILED, "course-not-published", "gone")
    plan = plan_batch(requests, {KEY: EnrolmentState(KEY)}, {"course": VIEW}, {"gone": missing_course}, NOW)
    [(aggregation, _)] = plan.applied
    assert dict(aggregation.state.content_status) == {"r1": 2, "r2": 2}
    assert plan.rejected == {other: NOT_ENROLLED, unknown_course: missing_course}


# unit1 gains a leaf: a learner who had completed it has not any more.
WIDER = collection(
    "course",
    collection("unit1", leaf("r1"), leaf("r2"), leaf("r6")),
    collection("unit2", leaf("r3"), collection("unit2.1", leaf("r4"), leaf("r5", optional=True))),
    visibility="Default",
)
WIDER_RELATIONS = compute_relations(parse_hierarchy(WIDER))
WIDER_VIEW = CourseView(
    "course", WIDER_RELATIONS.leaf_nodes, WIDER_RELATIONS.optional_nodes, WIDER_RELATIONS.ancestors
)


def test_a_unit_completed_again_after_a_republication_is_not_emitted_twice() -> None:
    done = aggregate(EnrolmentState(KEY), [ContentUpdate("r1", 2), ContentUpdate("r2", 2)], VIEW, NOW)
    assert ("CourseUnit", "unit1", "complete") in audits({r.key for r in done.audits})
    assert done.state.units_completed == {"unit1"}
    assert done.state.units_started == {"unit1"}
    republished = recompute(done.state, WIDER_VIEW, NOW)
    assert republished.audits == ()
    metric = next(m for m in republished.metrics if m.activity_id == "unit1")
    assert (metric.completed_count, metric.leaf_nodes_count) == (2, 3)
    again = aggregate(republished.state, [ContentUpdate("r6", 2)], WIDER_VIEW, NOW)
    assert audits({r.key for r in again.audits}) == {
        ("Content", "r6", "start"),
        ("Content", "r6", "complete"),
    }
    assert next(m for m in again.metrics if m.activity_id == "unit1").progress == 100


def test_a_recomputation_emits_only_conditions_true_for_the_first_time() -> None:
    started = aggregate(EnrolmentState(KEY), [ContentUpdate("r3", 2), ContentUpdate("r4", 2)], VIEW, NOW)
    emitted = audits({r.key for r in started.audits})
    assert ("CourseUnit", "unit2", "complete") in emitted
    assert ("Course", "course", "enrol") in emitted
    assert recompute(started.state, VIEW, NOW).audits == ()
    # A republication that takes unit1 and r1, r2 away leaves r3 and r4: the course is now complete.
    narrower = collection(
        "course",
        collection("unit2", leaf("r3"), collection("unit2.1", leaf("r4"), leaf("r5", optional=True))),
        visibility="Default",
    )
    relations = compute_relations(parse_hierarchy(narrower))
    view = CourseView("course", relations.leaf_nodes, relations.optional_nodes, relations.ancestors)
    completed = recompute(started.state, view, NOW)
    assert audits({r.key for r in completed.audits}) == {("Course", "course", "complete")}
    assert completed.course_completed_now
    assert recompute(completed.state, view, NOW).audits == ()


with_r6 = st.lists(
    st.lists(
        st.builds(ContentUpdate, st.sampled_from([*LEAVES, "r6"]), st.integers(0, 2)), min_size=1, max_size=4
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(with_r6, st.lists(st.booleans(), min_size=1, max_size=6))
def test_republications_between_batches_never_emit_an_audit_event_twice(
    events: list[list[ContentUpdate]], wider: list[bool]
) -> None:
    views = [WIDER_VIEW if w else VIEW for w in wider]
    state = EnrolmentState(KEY)
    emitted: list[tuple[str, ...]] = []
    for index, batch in enumerate(events):
        view = views[index % len(views)]
        state = recompute(state, view, NOW).state if state.content_status else state
        leaves = view.course_leaves
        result = aggregate(state, [u for u in batch if u.content_id in leaves], view, NOW)
        emitted += [record.key for record in result.audits]
        state = result.state
    assert len(emitted) == len(set(emitted))
    completed = {c for c, s in state.content_status.items() if s == 2}
    for _, _, _, object_type, object_id, action in emitted:
        if object_type == "CourseUnit":
            assert object_id in (state.units_completed if action == "complete" else state.units_started)
    for unit in state.units_completed:
        assert VIEW.required(unit) <= completed or WIDER_VIEW.required(unit) <= completed


def test_the_mid_of_an_audit_event_is_its_key_digest_and_never_changes() -> None:
    """Consumers drop repeats by ``mid`` across versions: it is SHA-256 of the key's six fields."""
    record = AuditRecord(EnrolmentKey("u", "c", "b"), AuditObject.COURSE_UNIT, "x", AuditAction.COMPLETE)
    assert record.mid == "AUDIT.2d9f6c80a2a5b8e2bbdcb72dcc3f98e8"
    assert record.telemetry(5, None)["mid"] == record.mid


def test_the_relay_builds_the_payload_an_audit_event_would_give() -> None:
    record = AuditRecord(EnrolmentKey("u", "c", "b"), AuditObject.CONTENT, "r1", AuditAction.START)
    telemetry = record.telemetry(1_700_000_000_000, "ch")
    event = AuditEventEmitted(user_id="u", telemetry=telemetry, occurred_at=NOW)
    assert AuditEventEmitted.payload_of("u", telemetry, NOW.isoformat()) == event.payload()
    assert telemetry["object"] == {"id": "r1", "type": "Content", "rollup": {"l1": "c"}}
    assert type(telemetry["object"]["type"]) is str
    assert telemetry["edata"] == {"type": "start", "props": ["status"]}


def test_each_content_is_stamped_when_first_started_and_first_completed() -> None:
    day = [datetime(2026, 11, d, tzinfo=UTC) for d in range(1, 6)]
    state = EnrolmentState(KEY)
    state = aggregate(state, [ContentUpdate("r1", 1), ContentUpdate("r2", 0)], VIEW, day[0]).state
    assert state.status_times == {"r1": (epoch_ms(day[0]), None)}
    state = aggregate(state, [ContentUpdate("r1", 2), ContentUpdate("r3", 2)], VIEW, day[1]).state
    state = aggregate(state, [ContentUpdate("r1", 1), ContentUpdate("r1", 2)], VIEW, day[2]).state
    assert state.status_times == {
        "r1": (epoch_ms(day[0]), epoch_ms(day[1])),
        # Reported completed straight away: started then too.
        "r3": (epoch_ms(day[1]), epoch_ms(day[1])),
    }
    # A republication's recompute replays every status: no stamp moves.
    assert recompute(state, VIEW, day[4]).state.status_times == state.status_times


@given(st.lists(st.lists(st.tuples(st.sampled_from(LEAVES), st.integers(0, 2)), max_size=4), max_size=8))
def test_stamps_follow_statuses_in_any_stream(stream: list[list[tuple[str, int]]]) -> None:
    state = EnrolmentState(KEY)
    for index, batch in enumerate(stream):
        now = datetime(2026, 11, 1 + index, tzinfo=UTC)
        state = aggregate(state, [ContentUpdate(c, s) for c, s in batch], VIEW, now).state
    started = {c for c, s in state.content_status.items() if s >= 1}
    assert set(state.status_times) == started
    for content, (began, ended) in state.status_times.items():
        assert (ended is not None) == (state.content_status[content] == 2)
        assert ended is None or began <= ended


def test_a_roots_publications_share_a_partition_and_other_events_are_in_the_first() -> None:
    def publish(
        identifier: str, key: str = "identifier", action: str = "post-publish-process"
    ) -> dict[str, object]:
        return {"eid": "BE_JOB_REQUEST", "edata": {"action": action, key: identifier}}

    first = root_partition_of(publish("do_1"), 64)
    assert first == root_partition_of(publish(" do_1 ", key="id", action="relation-cache-update"), 64)
    assert {root_partition_of(publish(f"do_{n}"), 64) for n in range(200)} == set(range(64))
    assert root_partition_of(publish("do_1"), 1) == 0
    assert root_partition_of(publish("  "), 64) == 0
    assert root_partition_of(publish("do_1", action="batch-enrolment-update"), 64) == 0
    assert root_partition_of({"edata": "not an object"}, 64) == 0
