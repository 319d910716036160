"""The report rules and formats: framework matching, ongoing batches, masking, rows and summaries."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from courseinfra.domain.hierarchy import parse_hierarchy
from courseinfra.domain.reports import (
    HISTOGRAM_BUCKETS,
    AcceptedFrameworks,
    BatchSummary,
    CourseFacts,
    LearnerRow,
    SkipReason,
    csv_record,
    first_level_units,
    histogram_bucket,
    is_ongoing,
    mask_email,
    mask_name,
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
    batches = [("b1", "ok"), ("b2", "draft"), ("b3", "blank"), ("b4", "none"), ("b5", "etb"), ("b6", "gone")]
    selection = select_for_report(batches, lambda b: b[1], courses, AcceptedFrameworks.of(["TPD"]))
    assert selection.selected == (("b1", "ok"),)
    assert {b[0]: reason for b, reason in selection.skipped} == {
        "b2": SkipReason.COURSE_NOT_PUBLISHED,
        "b3": SkipReason.COURSE_HAS_NO_FRAMEWORK,
        "b4": SkipReason.COURSE_HAS_NO_FRAMEWORK,
        "b5": SkipReason.FRAMEWORK_NOT_ACCEPTED,
        "b6": SkipReason.COURSE_NOT_FOUND,
    }


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
