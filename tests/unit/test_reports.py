"""The report rules and formats: framework matching, ongoing batches, masking, rows and summaries."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from courseinfra.domain.hierarchy import compute_relations, parse_hierarchy
from courseinfra.domain.progress import CourseView, epoch_ms
from courseinfra.domain.reports import (
    HISTOGRAM_BUCKETS,
    AcceptedFrameworks,
    BatchDates,
    BatchSummary,
    CourseFacts,
    LearnerRow,
    ProgressBasis,
    ProgressHistory,
    ReportUnit,
    SkipReason,
    csv_record,
    end_of_day,
    first_level_units,
    has_started,
    histogram_bucket,
    is_ongoing,
    mask_email,
    mask_name,
    progress_basis,
    row_as_of,
    select_for_report,
)
from tests.support.builders import collection, leaf

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def row(progress: int = 0, status: int = 0, **changes: object) -> LearnerRow:
    values: dict[str, object] = {
        "user_id": "u1",
        "name": "Asha Rao",
        "email": "asha@example.org",
        "enrolled_on": T0,
        "course_id": "c1",
        "status": status,
        "completion_percentage": progress,
        "completed_on": None,
        "certificate_issued": False,
        "unit_progress": (),
    }
    values.update(changes)
    return LearnerRow(**values)  # type: ignore[arg-type]


def test_frameworks_match_exactly_after_trimming_and_case_folding() -> None:
    accepted = AcceptedFrameworks.of(["TPD", " ncf ", ""])
    assert accepted.names == {"tpd", "ncf"}
    assert "TPD" in accepted
    assert " tpd\t" in accepted
    assert "NCF" in accepted
    # The reference implementation's substring test on a serialised list would accept these.
    for near_miss in ("TP", "PD", "T", "TPD2", "TPD NCF", '"TPD"', "[TPD]", ""):
        assert near_miss not in accepted
    assert None not in accepted


def test_a_batch_is_ongoing_through_its_end_date() -> None:
    assert is_ongoing(None, date(2026, 1, 1))
    assert is_ongoing(date(2026, 1, 1), date(2026, 1, 1))
    assert not is_ongoing(date(2025, 12, 31), date(2026, 1, 1))


def test_every_left_out_batch_has_its_reason() -> None:
    courses = {
        "ok": CourseFacts(True, "TPD"),
        "draft": CourseFacts(False, "TPD"),
        "blank": CourseFacts(True, "  "),
        "none": CourseFacts(True, None),
        "etb": CourseFacts(True, "ETB"),
    }
    day = date(2026, 11, 10)
    batches = [
        ("b1", "ok", None, None),
        ("b2", "draft", None, None),
        ("b3", "blank", None, None),
        ("b4", "none", None, None),
        ("b5", "etb", None, None),
        ("b6", "gone", None, None),
        ("b7", "ok", date(2026, 11, 1), date(2026, 11, 9)),
        ("b8", "ok", date(2026, 11, 11), None),
        ("b9", "ok", date(2026, 11, 10), date(2026, 11, 10)),
        ("b10", "gone", date(2026, 11, 1), date(2026, 11, 2)),
    ]
    selection = select_for_report(
        batches, lambda b: BatchDates(b[1], b[2], b[3]), courses, AcceptedFrameworks.of(["TPD"]), day
    )
    assert [b[0] for b in selection.selected] == ["b1", "b9"]
    assert {b[0]: reason for b, reason in selection.skipped} == {
        "b2": SkipReason.COURSE_NOT_PUBLISHED,
        "b3": SkipReason.COURSE_HAS_NO_FRAMEWORK,
        "b4": SkipReason.COURSE_HAS_NO_FRAMEWORK,
        "b5": SkipReason.FRAMEWORK_NOT_ACCEPTED,
        "b6": SkipReason.COURSE_NOT_FOUND,
        "b7": SkipReason.BATCH_ENDED,
        "b8": SkipReason.BATCH_NOT_STARTED,
        # The batch's own dates come first: an ended batch of a vanished course ended.
        "b10": SkipReason.BATCH_ENDED,
    }


def test_a_batch_has_started_on_its_start_date() -> None:
    assert has_started(None, date(2026, 1, 1))
    assert has_started(date(2026, 1, 1), date(2026, 1, 1))
    assert not has_started(date(2026, 1, 2), date(2026, 1, 1))


def test_a_past_date_is_rebuilt_and_today_is_current() -> None:
    now = datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
    assert end_of_day(date(2026, 11, 9)) == datetime(2026, 11, 10, tzinfo=UTC)
    assert progress_basis(date(2026, 11, 9), now) is ProgressBasis.REBUILT
    assert progress_basis(date(2026, 11, 10), now) is ProgressBasis.CURRENT
    assert progress_basis(date(2026, 11, 11), now) is ProgressBasis.CURRENT


# democourse: unit1 holds r1 and r2 (r2 optional), unit2 holds r3 and r4.
COURSE = compute_relations(
    parse_hierarchy(
        collection(
            "c1",
            collection("unit1", leaf("r1"), leaf("r2", optional=True)),
            collection("unit2", leaf("r3"), leaf("r4")),
            visibility="Default",
        )
    )
)
VIEW = CourseView("c1", COURSE.leaf_nodes, COURSE.optional_nodes, COURSE.ancestors)
UNITS = (ReportUnit("unit1", "Unit 1"), ReportUnit("unit2", "Unit 2"))


def ms(day: int, hour: int = 12) -> int:
    return epoch_ms(datetime(2026, 11, day, hour, tzinfo=UTC))


def test_a_row_as_of_a_past_date_counts_only_what_was_reached_by_its_end() -> None:
    history = ProgressHistory(
        content_status={"r1": 2, "r3": 2, "r4": 1, "r2": 0},
        status_times={"r1": (ms(2), ms(3)), "r3": (ms(3), ms(5)), "r4": (ms(4), None)},
        last_updated=datetime(2026, 11, 5, 12, tzinfo=UTC),
    )
    now_row = row(progress=66, status=1, unit_progress=(100, 50))
    before = end_of_day(date(2026, 11, 1))
    assert row_as_of(now_row, history, VIEW, UNITS, before).status == 0
    assert row_as_of(now_row, history, VIEW, UNITS, before).unit_progress == (0, 0)
    on_2 = row_as_of(now_row, history, VIEW, UNITS, end_of_day(date(2026, 11, 2)))
    assert (on_2.status, on_2.completion_percentage, on_2.unit_progress) == (1, 0, (0, 0))
    on_3 = row_as_of(now_row, history, VIEW, UNITS, end_of_day(date(2026, 11, 3)))
    # Required leaves are r1, r3, r4 (r2 is optional): one of three.
    assert (on_3.status, on_3.completion_percentage, on_3.unit_progress) == (1, 33, (100, 0))
    on_5 = row_as_of(now_row, history, VIEW, UNITS, end_of_day(date(2026, 11, 5)))
    assert (on_5.completion_percentage, on_5.unit_progress) == (66, (100, 50))
    # What the aggregator records now is what a rebuild up to now gives.
    assert (on_5.completion_percentage, on_5.unit_progress) == (
        now_row.completion_percentage,
        now_row.unit_progress,
    )


def test_a_completion_counts_from_its_date_and_unstamped_statuses_from_the_last_update() -> None:
    done_on = datetime(2026, 11, 6, 9, tzinfo=UTC)
    history = ProgressHistory(
        content_status={"r1": 2, "r3": 2, "r4": 2},
        status_times={},  # recorded before stamps were kept
        last_updated=datetime(2026, 11, 6, 9, tzinfo=UTC),
        certificates=({"name": "c", "lastIssuedOn": "2026-11-07T10:00:00Z"}, {"name": "undated"}),
    )
    now_row = row(
        progress=100, status=2, completed_on=done_on, certificate_issued=True, unit_progress=(100, 100)
    )
    on_5 = row_as_of(now_row, history, VIEW, UNITS, end_of_day(date(2026, 11, 5)))
    assert (on_5.status, on_5.completion_percentage, on_5.completed_on, on_5.unit_progress) == (
        0,
        0,
        None,
        (0, 0),
    )
    assert on_5.certificate_issued  # the undated certificate is counted as it is
    on_6 = row_as_of(now_row, history, VIEW, UNITS, end_of_day(date(2026, 11, 6)))
    assert (on_6.status, on_6.completion_percentage, on_6.completed_on) == (2, 100, done_on)
    dated_only = ProgressHistory(
        history.content_status, {}, history.last_updated, certificates=history.certificates[:1]
    )
    assert not row_as_of(now_row, dated_only, VIEW, UNITS, end_of_day(date(2026, 11, 6))).certificate_issued
    assert row_as_of(now_row, dated_only, VIEW, UNITS, end_of_day(date(2026, 11, 7))).certificate_issued


def test_units_are_the_roots_child_collections_in_order_with_distinct_titles() -> None:
    hierarchy = collection(
        "c1",
        collection("m1", leaf("r1"), name="Basics"),
        leaf("r0"),
        collection("m2", collection("m2a", leaf("r2"), name="Deep"), name="Basics"),
        collection("m3", leaf("r3")),
        visibility="Default",
    )
    units = first_level_units(parse_hierarchy(hierarchy))
    assert [(u.unit_id, u.title) for u in units] == [
        ("m1", "Basics (m1)"),
        ("m2", "Basics (m2)"),
        ("m3", "m3"),
    ]


def test_masking_keeps_initials_and_the_email_domain() -> None:
    assert mask_name("Asha  Rao") == "A*** R**"
    assert mask_email("asha@example.org") == "a***@example.org"
    assert mask_email("not-an-email") == "n***********"
    record = csv_record(row(), mask_personal_data=True)
    assert record[1:3] == ["A*** R**", "a***@example.org"]
    assert csv_record(row(name=None, email=None), mask_personal_data=True)[1:3] == ["", ""]


def test_progress_is_never_shown_above_100_nor_below_0() -> None:
    record = csv_record(row(progress=130, unit_progress=(150, -3, 40)), mask_personal_data=False)
    assert record[5] == 100
    assert record[8:] == [100, 0, 40]


def test_histogram_bucket_edges() -> None:
    assert [histogram_bucket(p) for p in (-5, 0, 9, 10, 99, 100, 250)] == [0, 0, 0, 1, 9, 10, 10]
    assert HISTOGRAM_BUCKETS[0] == "0-9"
    assert HISTOGRAM_BUCKETS[9] == "90-99"
    assert HISTOGRAM_BUCKETS[10] == "100"


@given(st.lists(st.tuples(st.integers(-20, 150), st.integers(0, 2)), max_size=50))
def test_a_summary_counts_every_row_once(rows: list[tuple[int, int]]) -> None:
    summary = BatchSummary("b1", "c1")
    for progress, status in rows:
        summary.add(row(progress, status))
    assert summary.enrolled == len(rows) == sum(summary.histogram)
    assert summary.started == sum(status >= 1 for _, status in rows)
    assert summary.completed == sum(status == 2 for _, status in rows)
    assert 0 <= summary.completion_rate <= 100
    document = summary.as_json()
    assert list(document["progress_histogram"]) == list(HISTOGRAM_BUCKETS)
