"""Fuzzing ingest and content publish end to end, on every backend: a file of random lines (valid events,
random bytes, hostile JSON, lines over the limit, bytes that are not UTF-8) is read the way
``courseinfra ingest`` reads it, and every line is either applied or kept in the failed events with a
reason; a hostile hierarchy is either stored (as given) and published, or refused with the project's
error. Never a crash."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from courseinfra.bootstrap import App
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.errors import DomainError, InvalidHierarchy
from courseinfra.domain.job_requests import Outcome
from courseinfra.domain.progress import EnrolmentKey
from courseinfra.services import content, enrolments
from courseinfra.services.content import ContentNotFound
from courseinfra.services.events.ingest import IngestReport, ingest, read_lines
from courseinfra.services.failed_events.ports import FailedEvent
from courseinfra.settings import Settings
from tests.support.builders import collection, leaf, post_publish_event, progress_event
from tests.support.cli import Cli
from tests.support.hostile import (
    dumps,
    hostile_events,
    hostile_hierarchies,
    hostile_json_text,
    hostile_text,
    hostile_values,
    nested,
)

#: The line limit of these runs (COURSEINFRA_INGEST_MAX_LINE_BYTES, at its minimum).
MAX_LINE = 1024
#: Small chunks, so that a file spans several.
CHUNK = 4

COURSE = collection(
    "course",
    collection("unit1", leaf("r1"), leaf("r2")),
    collection("unit2", leaf("r3"), leaf("r4", optional=True)),
    visibility="Default",
)
KEY = EnrolmentKey("u1", "course", "b1")
CONTENTS = ["r1", "r2", "r3", "r4"]
FILES = itertools.count(1)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def course_app(app: App) -> App:
    """``app`` with the course published, u1 enrolled in its batch b1, and a line limit of 1 KiB."""
    content.put_hierarchy(COURSE, app.uow_factory())
    content.publish("course", app.uow_factory())
    enrolments.create_batch(CourseBatch("b1", "course", "Batch 1", datetime.now(UTC)), app.uow_factory())
    enrolments.enrol("u1", "b1", app.uow_factory())
    limited = app.settings.model_copy(update={"ingest_max_line_bytes": MAX_LINE, "ingest_chunk_size": CHUNK})
    return App(**{**vars(app), "settings": limited})


@dataclass(frozen=True)
class Progress:
    """A valid progress event of u1, whose effect must show."""

    content_id: str
    status: int

    def line(self) -> bytes:
        return progress_event("u1", (self.content_id, self.status)).encode()


Line = bytes | Progress

valid_lines = st.one_of(
    st.builds(Progress, st.sampled_from(CONTENTS), st.integers(0, 2)),
    st.just(post_publish_event("course").encode()),
)
hostile_lines = st.one_of(
    st.binary(max_size=64),
    hostile_json_text.map(lambda text: text.encode("utf-8", "surrogatepass")),
    hostile_events.map(lambda event: dumps(event, ascii_only=False).encode("utf-8", "surrogatepass")),
    hostile_events.map(lambda event: dumps(event).encode()),
    st.builds(
        lambda user, content_id, status: progress_event(user, (content_id, status)).encode(),
        st.sampled_from(["u1"]) | hostile_text,
        st.sampled_from(CONTENTS) | hostile_text,
        st.integers(-1, 3),
    ),
    st.builds(lambda identifier: post_publish_event(identifier).encode(), hostile_text),
    # Around the limit: a line of exactly MAX_LINE bytes is read, one byte more is too long.
    st.builds(
        lambda pad, tail: b'{"pad": "' + pad * (MAX_LINE - 12 + tail) + b'"}',
        st.sampled_from([b"x", b"\xe9", b"\x00", "é".encode()]),
        st.integers(-2, 3 * MAX_LINE),
    ),
    st.sampled_from([b"", b" ", b"\r", b"\t \r", b"\x00", b"\xff\xfe", b"\xed\xa0\x80", b"\xc3"]),
)
files = st.tuples(st.lists(valid_lines | hostile_lines, min_size=1, max_size=14), st.booleans())


def expected_lines(data: bytes) -> int:
    """The lines ingest reads from ``data``: every line but the blank ones (whitespace only, UTF-8 and
    within the limit)."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()

    def blank(raw: bytes) -> bool:
        try:
            return len(raw) <= MAX_LINE and not raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return False

    return sum(not blank(raw) for raw in lines)


def ingest_file(app: App, path: Path) -> IngestReport:
    """What ``courseinfra ingest PATH`` does (without ``--workers``)."""
    with path.open("rb") as stream:
        return ingest(
            read_lines(stream, max_bytes=app.settings.ingest_max_line_bytes),
            path.name,
            app.router,
            app.uow_factory,
            chunk_size=app.settings.ingest_chunk_size,
        )


def kept_of(app: App, source: str) -> dict[str, FailedEvent]:
    """The kept events (open or resolved) whose last line kept was one of the file ``source``, by that
    line (``file:number``)."""
    found: dict[str, FailedEvent] = {}
    after = 0
    with app.uow_factory() as uow:
        while page := uow.failed_events.list(
            outcomes=(Outcome.FAILED, Outcome.SKIPPED), include_resolved=True, limit=500, after_id=after
        ):
            found.update((e.source, e) for e in page if e.source.startswith(f"{source}:"))
            after = page[-1].id
    return found


def line_number(source: str) -> int:
    return int(source.rsplit(":", 1)[1])


def check_accounting(app: App, lines: list[Line], final_newline: bool) -> IngestReport:
    data = b"\n".join(line.line() if isinstance(line, Progress) else line for line in lines)
    if final_newline:
        data += b"\n"
    path = app.settings.home / f"fuzz-{next(FILES)}.jsonl"
    path.write_bytes(data)

    report = ingest_file(app, path)

    read = expected_lines(data)
    applied = report.counters.total("success")
    kept = len(report.rejected)
    assert applied + kept == read, (applied, kept, read, dict(report.counters))
    assert report.counters.total("total") == read
    for rejected in report.rejected:
        assert rejected.code, rejected
        assert rejected.reason.strip(), rejected
        assert rejected.outcome in {Outcome.FAILED, Outcome.SKIPPED}
    # Each rejected line is kept: in its own entry, or (its job and text kept already) in the entry
    # of a later line with the same job and text. A replay (the course's relation cache rebuilt by a
    # post-publish line) may give an entry another code and reason since, never another source.
    stored = kept_of(app, path.name)
    by_source = {rejected.source: rejected for rejected in report.rejected}
    for source, event in stored.items():
        assert source in by_source, event
        assert event.job == by_source[source].job, event
        assert event.reason.strip(), event
    for rejected in report.rejected:
        number = line_number(rejected.source)
        assert any(
            event.job == rejected.job and line_number(source) >= number for source, event in stored.items()
        ), rejected
    # The valid events' effect is there: a status never goes down.
    status = enrolments.get_enrolment(KEY, app.uow_factory).state.content_status
    for line in lines:
        if isinstance(line, Progress):
            assert status.get(line.content_id, -1) >= line.status, (line, dict(status))
    return report


@FUZZ
@given(case=files)
@example(case=([b'{"a": "\x00"}', b"\x00", Progress("r1", 2)], True))
@example(
    case=(
        [
            b'{"eid": "BE_JOB_REQUEST", "edata": {"action": "batch-enrolment-update", "userId": "\\u0000", '
            b'"courseId": "course", "batchId": "b1", "contents": [{"contentId": "r1", "status": 2}]}}'
        ],
        False,
    )
)
@example(case=([post_publish_event("course\x00").encode(), post_publish_event("x" * 300).encode()], True))
@example(case=([b"x" * MAX_LINE, b"y" * (MAX_LINE + 1), b"\xff" * (MAX_LINE + 1), Progress("r3", 1)], False))
@example(
    case=([progress_event("u1", ("elsewhere", 2)).encode(), post_publish_event("course").encode()], False)
)
def test_every_line_of_a_hostile_file_is_applied_or_kept_with_a_reason(
    course_app: App, case: tuple[list[Line], bool]
) -> None:
    lines, final_newline = case
    check_accounting(course_app, lines, final_newline)


def test_the_cli_reads_a_hostile_file_without_a_traceback(settings: Settings, course_app: App) -> None:
    lines: list[Line] = [
        Progress("r1", 1),
        b"\x00",
        b'{"a": "\x00"}',
        b"\xff\xfe",
        b"z" * (2 * MAX_LINE),
        post_publish_event("course\x00").encode(),
        progress_event("u1\x00", ("r1", 2)).encode(),
        Progress("r2", 2),
    ]
    path = settings.home / "hostile.jsonl"
    path.write_bytes(b"\n".join(line.line() if isinstance(line, Progress) else line for line in lines))
    done = Cli(settings)(
        "ingest", str(path), "--json", env={"COURSEINFRA_INGEST_MAX_LINE_BYTES": str(MAX_LINE)}
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    kept = kept_of(course_app, path.name)
    assert sorted(kept) == [f"hostile.jsonl:{n}" for n in range(2, 8)], kept
    assert all(event.reason.strip() for event in kept.values())
    status = enrolments.get_enrolment(KEY, course_app.uow_factory).state.content_status
    assert (status.get("r1"), status.get("r2")) == (1, 2)


# --- hierarchies through content put and publish ---


def put_and_publish(app: App, raw: Any) -> None:
    refused: DomainError | None = None
    try:
        stored = content.put_hierarchy(raw, app.uow_factory())
    except DomainError as error:
        refused = error
    if refused is not None:
        assert refused.code == "invalid-hierarchy", refused
        assert str(refused).strip(), refused
        return
    event = content.publish(stored.identifier, app.uow_factory())
    assert event.identifier == raw["identifier"]
    kept = content.get_hierarchy(stored.identifier, app.uow_factory)
    assert kept.version == stored.version
    assert kept.published_at is not None
    assert kept.hierarchy == raw  # stored as given


#: Regressions: each reached the store and failed there (PostgreSQL's StringDataRightTruncation or
#: DataError on NUL, orjson's TypeError on a surrogate or a big integer), or was stored changed (NaN).
UNSTORABLE = {
    "long-channel": {**collection("long-channel"), "channel": "c" * 300},
    "long-identifier": collection("x" * 300, leaf("r")),
    "nul": collection("nul\x00", leaf("r\x00")),
    "nul-key": {**collection("nul-key"), "meta": {"\x00": 1}},
    "surrogate": collection("surrogate", leaf("\ud800")),
    "huge-int": {**collection("huge-int"), "pkgVersion": 2**64},
    "nan": {**collection("nan"), "size": float("nan")},
}


@pytest.mark.parametrize("raw", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_a_hierarchy_the_store_cannot_keep_is_refused_before_it(app: App, raw: dict[str, Any]) -> None:
    with pytest.raises(InvalidHierarchy, match=r"not JSON|characters long"):
        content.put_hierarchy(raw, app.uow_factory())
    if "\x00" not in raw["identifier"]:  # PostgreSQL refuses a NUL in a query's parameter too
        with pytest.raises(ContentNotFound):
            content.get_hierarchy(raw["identifier"], app.uow_factory)


@FUZZ
@given(raw=st.one_of(hostile_hierarchies(), hostile_values(), st.builds(nested, st.integers(0, 300))))
@example(
    raw=collection("fine", leaf("x" * 300), leaf("é\u2028\U0001d54f"), meta={"n": 2**64 - 1, "f": 1e308})
)
def test_a_hostile_hierarchy_is_stored_and_published_or_refused(app: App, raw: Any) -> None:
    put_and_publish(app, raw)
