"""Course progress reports, only for the batches of courses made for teacher professional development.

The seed's rule: report on an ongoing batch only where its course's framework is one of the accepted ones
(``TPD`` by default). Matching is exact after trimming and case folding, never a substring test (the
reference implementation tests ``contains`` on a serialised list, which lets ``TP`` or ``PD`` through).

A report is one CSV row per enrolment with the learner's course and first-level unit progress, a summary
(enrolled, started, completed, completion rate, progress histogram) and a chart of that histogram. This
module holds the rules and the formats; reading rows and writing files are the adapters' part.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from html import escape
from typing import Any, Generic, TypeVar

from courseinfra.domain.hierarchy import FlatHierarchy
from courseinfra.domain.progress import (
    COMPLETED,
    IN_PROGRESS,
    CourseView,
    EnrolmentStatus,
    StatusTimes,
    epoch_ms,
    percentage,
)

B = TypeVar("B")

FIXED_COLUMNS = (
    "User ID",
    "User Name",
    "Email",
    "Enrolment Date",
    "Course ID",
    "Course Progress",
    "Completion Date",
    "Certificate Status",
)
CERTIFICATE_ISSUED = "Issued"
CERTIFICATE_NOT_ISSUED = "Not issued"
# Ten buckets of ten points, then 100 on its own: "complete" is what an operator looks for first.
HISTOGRAM_BUCKETS = (*(f"{low}-{low + 9}" for low in range(0, 100, 10)), "100")


def normalise_framework(name: str) -> str:
    """A framework name as compared: trimmed and case-folded."""
    return name.strip().casefold()


@dataclass(frozen=True, slots=True)
class AcceptedFrameworks:
    """The frameworks whose courses are reported on, compared after :func:`normalise_framework`."""

    names: frozenset[str]

    @classmethod
    def of(cls, names: Iterable[str]) -> AcceptedFrameworks:
        return cls(frozenset(n for n in (normalise_framework(name) for name in names) if n))

    def __contains__(self, framework: object) -> bool:
        return isinstance(framework, str) and normalise_framework(framework) in self.names


@dataclass(frozen=True, slots=True)
class CourseFacts:
    """What the filter needs of a batch's course: whether it was published, and its framework."""

    published: bool
    framework: str | None


class SkipReason(enum.StrEnum):
    BATCH_ENDED = "batch-ended"
    BATCH_NOT_STARTED = "batch-not-started"
    COURSE_NOT_FOUND = "course-not-found"
    COURSE_NOT_PUBLISHED = "course-not-published"
    COURSE_HAS_NO_FRAMEWORK = "course-has-no-framework"
    FRAMEWORK_NOT_ACCEPTED = "framework-not-accepted"


@dataclass(frozen=True, slots=True)
class ReportSelection(Generic[B]):
    """The batches to report on, and every other batch with the reason it is left out."""

    selected: tuple[B, ...]
    skipped: tuple[tuple[B, SkipReason], ...]

    def skipped_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, reason in self.skipped:
            counts[reason.value] = counts.get(reason.value, 0) + 1
        return counts


def is_ongoing(end_date: date | None, as_of: date) -> bool:
    """A batch is ongoing until its end date has passed: an empty end date never passes."""
    return end_date is None or end_date >= as_of


def has_started(start_date: date | None, as_of: date) -> bool:
    """A batch has started on its start date; an empty start date has always passed."""
    return start_date is None or start_date <= as_of


@dataclass(frozen=True, slots=True)
class BatchDates:
    """What the filter needs of a batch itself: its course and the days it runs."""

    course_id: str
    start_date: date | None
    end_date: date | None


def select_for_report(
    batches: Iterable[B],
    dates_of: Callable[[B], BatchDates],
    courses: Mapping[str, CourseFacts],
    accepted: AcceptedFrameworks,
    as_of: date,
) -> ReportSelection[B]:
    """Keep the batches ongoing on ``as_of`` (started, not ended) whose course is published with an
    accepted framework; give every other one its reason. ``courses`` holds the facts of every course
    found (one read for all the batches)."""
    selected: list[B] = []
    skipped: list[tuple[B, SkipReason]] = []
    for batch in batches:
        dates = dates_of(batch)
        facts = courses.get(dates.course_id)
        if not is_ongoing(dates.end_date, as_of):
            skipped.append((batch, SkipReason.BATCH_ENDED))
        elif not has_started(dates.start_date, as_of):
            skipped.append((batch, SkipReason.BATCH_NOT_STARTED))
        elif facts is None:
            skipped.append((batch, SkipReason.COURSE_NOT_FOUND))
        elif not facts.published:
            skipped.append((batch, SkipReason.COURSE_NOT_PUBLISHED))
        elif facts.framework is None or not facts.framework.strip():
            skipped.append((batch, SkipReason.COURSE_HAS_NO_FRAMEWORK))
        elif facts.framework not in accepted:
            skipped.append((batch, SkipReason.FRAMEWORK_NOT_ACCEPTED))
        else:
            selected.append(batch)
    return ReportSelection(tuple(selected), tuple(skipped))


@dataclass(frozen=True, slots=True)
class ReportUnit:
    """A first-level unit of the course: one progress column, titled with the unit's name."""

    unit_id: str
    title: str


def first_level_units(hierarchy: FlatHierarchy) -> tuple[ReportUnit, ...]:
    """The root's child collections, in the course's order. Two units of the same name get their id
    appended to the title, so that no two columns read the same."""
    units = [
        (hierarchy.identifiers[i], str(hierarchy.nodes[i].get("name") or hierarchy.identifiers[i]).strip())
        for i in range(1, len(hierarchy))
        if hierarchy.parents[i] == 0 and hierarchy.is_collection[i]
    ]
    names = [title for _, title in units]
    return tuple(
        ReportUnit(unit_id, f"{title} ({unit_id})" if names.count(title) > 1 else title)
        for unit_id, title in units
    )


def header(units: Sequence[ReportUnit]) -> list[str]:
    return [*FIXED_COLUMNS, *(unit.title for unit in units)]


@dataclass(frozen=True, slots=True)
class LearnerRow:
    """One enrolment of a batch as the report reads it. ``unit_progress`` follows the report's units;
    a unit the learner never touched is 0. ``name`` and ``email`` are None where the directory has none.
    ``history`` is read for a report of a past date only (see :func:`row_as_of`)."""

    user_id: str
    name: str | None
    email: str | None
    enrolled_on: datetime
    course_id: str
    status: int
    completion_percentage: int
    completed_on: datetime | None
    certificate_issued: bool
    unit_progress: tuple[int, ...]
    history: ProgressHistory | None = None


@dataclass(frozen=True, slots=True)
class ProgressHistory:
    """What an enrolment keeps of when its progress was made, for a report of a past date.

    ``status_times`` stamps each content's first start and completion; a status without a stamp (one
    recorded before stamps were kept) counts as reached at ``last_updated``, the latest time it can have
    been reached. ``certificates`` are the enrolment's certificate records as stored."""

    content_status: Mapping[str, int]
    status_times: Mapping[str, StatusTimes]
    last_updated: datetime
    certificates: tuple[Mapping[str, Any], ...] = ()


def _issued_on(certificate: Mapping[str, Any]) -> datetime | None:
    """A certificate's issue time as Sunbird records it (``lastIssuedOn``, else ``issuedOn``), or None
    where it has none that reads as an ISO date or time."""
    for name in ("lastIssuedOn", "issuedOn"):
        value = certificate.get(name)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def row_as_of(
    row: LearnerRow,
    history: ProgressHistory,
    course: CourseView,
    units: Sequence[ReportUnit],
    end: datetime,
) -> LearnerRow:
    """``row`` as it stood just before ``end``: the statuses stamped before ``end`` give the progress,
    computed as the aggregator computes it (required leaves of the course's current structure); the
    enrolment is completed if its completion date is before ``end``; a certificate counts when it was
    issued before ``end`` (or carries no issue date)."""
    end_ms = epoch_ms(end)
    fallback_ms = epoch_ms(history.last_updated)
    started: set[str] = set()
    completed: set[str] = set()
    for content, status in history.content_status.items():
        if status < IN_PROGRESS:
            continue
        started_at, completed_at = history.status_times.get(content, (fallback_ms, fallback_ms))
        if started_at < end_ms:
            started.add(content)
        if status == COMPLETED and (completed_at if completed_at is not None else fallback_ms) < end_ms:
            completed.add(content)
    required = course.required(course.course_id)
    completion = percentage(len(required & completed), len(required))
    if row.completed_on is not None and row.completed_on < end:
        status, completion, completed_on = EnrolmentStatus.COMPLETED, 100, row.completed_on
    elif not started.isdisjoint(course.course_leaves):
        status, completed_on = EnrolmentStatus.IN_PROGRESS, None
    else:
        status, completed_on = EnrolmentStatus.NOT_STARTED, None
    issued = False
    for certificate in history.certificates:
        issued_on = _issued_on(certificate)
        issued = issued or issued_on is None or issued_on < end
    unit_progress = tuple(
        percentage(len(course.required(unit.unit_id) & completed), len(course.required(unit.unit_id)))
        for unit in units
    )
    return LearnerRow(
        user_id=row.user_id,
        name=row.name,
        email=row.email,
        enrolled_on=row.enrolled_on,
        course_id=row.course_id,
        status=int(status),
        completion_percentage=completion,
        completed_on=completed_on,
        certificate_issued=issued,
        unit_progress=unit_progress,
    )


def clamp_progress(value: int) -> int:
    return max(0, min(100, value))


def mask_name(name: str) -> str:
    """Each word's first letter, then asterisks: enough to tell rows apart, not to identify anyone."""
    return " ".join(word[0] + "*" * (len(word) - 1) for word in name.split())


def mask_email(email: str) -> str:
    local, at, domain = email.partition("@")
    if not at:
        return mask_name(email)
    return f"{local[:1]}***@{domain}"


def _timestamp(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def csv_record(row: LearnerRow, *, mask_personal_data: bool) -> list[str | int]:
    """The row's CSV fields, in :func:`header` order."""
    name, email = row.name or "", row.email or ""
    if mask_personal_data:
        name, email = mask_name(name), mask_email(email) if email else ""
    return [
        row.user_id,
        name,
        email,
        _timestamp(row.enrolled_on),
        row.course_id,
        clamp_progress(row.completion_percentage),
        _timestamp(row.completed_on),
        CERTIFICATE_ISSUED if row.certificate_issued else CERTIFICATE_NOT_ISSUED,
        *(clamp_progress(value) for value in row.unit_progress),
    ]


def histogram_bucket(progress: int) -> int:
    """The index in :data:`HISTOGRAM_BUCKETS` of a (clamped) progress."""
    return min(clamp_progress(progress) // 10, 10)


class ProgressBasis(enum.StrEnum):
    """Where a report's progress comes from: the progress recorded now (a report of today or a later
    date), or progress rebuilt as of the end of a past date."""

    CURRENT = "current"
    REBUILT = "rebuilt"


PROGRESS_NOTES = {
    ProgressBasis.CURRENT: "progress as recorded when the report ran",
    ProgressBasis.REBUILT: (
        "progress as of the end of the date (UTC): enrolments made by then and not yet left, contents "
        "started and completed by then, against the course's current structure; a learner who left and "
        "came back counts as enrolled throughout (ADR 0010)"
    ),
}


def end_of_day(day: date) -> datetime:
    """The first moment after ``day`` ends, in UTC: what a report of ``day`` counts up to."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def progress_basis(as_of: date, now: datetime) -> ProgressBasis:
    """Rebuilt for a date that has ended by ``now``; the progress recorded now otherwise."""
    return ProgressBasis.REBUILT if end_of_day(as_of) <= now else ProgressBasis.CURRENT


@dataclass
class BatchSummary:
    """Counts over a batch's rows, built one row at a time (the rows are never held)."""

    batch_id: str
    course_id: str
    as_of: date | None = None
    basis: ProgressBasis = ProgressBasis.CURRENT
    enrolled: int = 0
    started: int = 0
    completed: int = 0
    certificates_issued: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * len(HISTOGRAM_BUCKETS))

    def add(self, row: LearnerRow) -> None:
        self.enrolled += 1
        self.started += row.status >= 1
        self.completed += row.status >= 2
        self.certificates_issued += row.certificate_issued
        self.histogram[histogram_bucket(row.completion_percentage)] += 1

    @property
    def completion_rate(self) -> float:
        """Completed over enrolled, in percent with two decimals; 0 for an empty batch."""
        return 0.0 if self.enrolled == 0 else round(100 * self.completed / self.enrolled, 2)

    def as_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "course_id": self.course_id,
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
            "progress_basis": self.basis.value,
            "progress_note": PROGRESS_NOTES[self.basis],
            "enrolled": self.enrolled,
            "started": self.started,
            "completed": self.completed,
            "completion_rate": self.completion_rate,
            "certificates_issued": self.certificates_issued,
            "progress_histogram": dict(zip(HISTOGRAM_BUCKETS, self.histogram, strict=True)),
        }


def progress_chart_svg(summary: BatchSummary, title: str) -> str:
    """A bar chart of the summary's progress histogram, as a self-contained SVG document."""
    width, height, left, bottom, top = 640, 320, 56, 48, 40
    plot_w, plot_h = width - left - 16, height - top - bottom
    peak = max(summary.histogram) or 1
    slot = plot_w / len(HISTOGRAM_BUCKETS)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    for index, (label, count) in enumerate(zip(HISTOGRAM_BUCKETS, summary.histogram, strict=True)):
        bar_h = plot_h * count / peak
        x = left + index * slot + 4
        y = top + plot_h - bar_h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot - 8:.1f}" height="{bar_h:.1f}" fill="#3b6ea5">'
            f"<title>{label}%: {count}</title></rect>"
        )
        if count:
            parts.append(
                f'<text x="{x + (slot - 8) / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle">{count}</text>'
            )
        parts.append(
            f'<text x="{x + (slot - 8) / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{label}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">course progress (%), '
        f"{summary.enrolled} enrolled, {summary.completed} completed</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ReportRun:
    """One generation of reports for a date: its progress while it runs, what it did when it ends."""

    run_id: str
    as_of: date
    status: RunStatus
    started_at: datetime
    requested_batches: tuple[str, ...] = ()
    batches_total: int = 0
    batches_done: int = 0
    rows_written: int = 0
    finished_at: datetime | None = None
    error: str | None = None
    outcome: Mapping[str, Any] = field(default_factory=dict)
