"""The console's courses and batches pages in process, on every backend: a course's relation cache as a
tree, a batch's progress and completions counted by the store, its report runs with their files and
charts; the API's permissions (reader, course staff scoped to another course, the pii grant for a
report's CSV) and bad ids as pages with a message."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest

from courseinfra.bootstrap import App
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.reports import AcceptedFrameworks
from courseinfra.services import content, enrolments
from courseinfra.services.events.ingest import ingest
from courseinfra.services.reports import ReportOptions, generate_reports
from tests.support.builders import aggregator_clock, collection, leaf, progress_event
from tests.support.console import console_client, message_of

ENROLLED_AT = datetime(2026, 3, 1, 9, tzinfo=UTC)
DAY_ONE = datetime(2026, 3, 10, 12, tzinfo=UTC)
DAY_TWO = datetime(2026, 3, 12, 8, tzinfo=UTC)


def course(identifier: str, framework: str = "TPD", channel: str = "org-a") -> dict[str, Any]:
    return collection(
        identifier,
        collection(
            f"{identifier}-u1",
            collection(
                f"{identifier}-s1", leaf(f"{identifier}-r1"), leaf(f"{identifier}-r2"), name="Lesson 1.1"
            ),
            name="Module 1",
        ),
        collection(
            f"{identifier}-u2",
            leaf(f"{identifier}-r3"),
            leaf(f"{identifier}-r4", optional=True),
            name="Module 2",
        ),
        visibility="Default",
        name=f"Course {identifier}",
        framework=framework,
        channel=channel,
    )


def publish(app: App, identifier: str, **extra: str) -> None:
    content.put_hierarchy(course(identifier, **extra), app.uow_factory())
    content.publish(identifier, app.uow_factory())
    app.relay()


def add_batch(app: App, batch_id: str, course_id: str) -> None:
    enrolments.create_batch(
        CourseBatch(
            batch_id,
            course_id,
            f"Batch {batch_id}",
            ENROLLED_AT,
            start_date=date(2026, 1, 1),
            mentors=("mentor-7",),
        ),
        app.uow_factory(),
    )


@pytest.fixture
def school(app: App) -> App:
    """Course ``cA`` (org-a) with batch ``bA`` of five learners: two completed (on 10 and 12 March),
    one at 50 %, one at 25 %, one not started, and a sixth who left; a report run of 12 March on it.
    Course ``cB`` (org-b) with batch ``bB`` of one learner."""
    publish(app, "cA")
    publish(app, "cB", channel="org-b")
    add_batch(app, "bA", "cA")
    add_batch(app, "bB", "cB")
    for user in ("ada", "bob", "cyd", "dan", "eve", "fay"):
        enrolments.enrol(user, "bA", app.uow_factory(), at=ENROLLED_AT)
    enrolments.enrol("gus", "bB", app.uow_factory(), at=ENROLLED_AT)
    enrolments.unenrol("fay", "bA", app.uow_factory(), at=ENROLLED_AT)
    every = [("cA-r1", 2), ("cA-r2", 2), ("cA-r3", 2), ("cA-r4", 2)]
    with aggregator_clock(app, DAY_ONE):
        ingest([progress_event("ada", *every, course="cA", batch="bA")], "t", app.router, app.uow_factory)
    with aggregator_clock(app, DAY_TWO):
        lines = [
            progress_event("bob", *every, course="cA", batch="bA"),
            progress_event("cyd", ("cA-r1", 2), ("cA-r2", 2), course="cA", batch="bA"),
            progress_event("dan", ("cA-r1", 2), course="cA", batch="bA"),
        ]
        assert ingest(lines, "t", app.router, app.uow_factory).rejected == []
    generate_reports(
        app.uow_factory,
        app.reports,
        ReportOptions(AcceptedFrameworks.of(["TPD"]), mask_personal_data=False),
        as_of=date(2026, 3, 12),
        batch_ids=("bA",),
    )
    return app


def section(html: str, start: str, end: str) -> str:
    return html[html.index(start) : html.index(end, html.index(start))]


def test_a_course_is_listed_found_and_its_cache_shown_as_a_tree(school: App) -> None:
    client = console_client(school, "reader")
    listed = client.get("/console/courses")
    assert listed.status_code == 200
    assert 'href="/console/courses/cA"' in listed.text
    assert 'href="/console/courses/cB"' in listed.text
    found = client.get("/console/courses", params={"course": " cA "})
    assert found.status_code == 303
    assert found.headers["location"] == "/console/courses/cA"
    page = client.get("/console/courses/cA")
    assert page.status_code == 200
    module_one = section(page.text, 'data-collection="cA-u1"', 'data-collection="cA-u2"')
    assert 'data-collection="cA-s1"' in module_one  # the lesson nested in its module
    assert 'data-leaf="cA-r1"' in module_one
    assert 'data-leaf="cA-r3"' not in module_one
    assert "Lesson 1.1" in module_one
    # Each leaf's ancestors, nearest first.
    assert "<code>cA-s1</code> \u203a <code>cA-u1</code> \u203a <code>cA</code>" in module_one
    module_two = page.text[page.text.index('data-collection="cA-u2"') :]
    assert 'data-leaf="cA-r4"' in module_two
    assert "optional" in module_two
    assert "org-a" in page.text


def test_an_unknown_or_unpublished_course_and_bad_ids_are_messages(school: App) -> None:
    content.put_hierarchy(course("draft"), school.uow_factory())
    client = console_client(school, "reader")
    draft = client.get("/console/courses/draft")
    assert draft.status_code == 200
    assert "it has not been published" in draft.text
    for path, status in [
        ("/console/courses/nope", 404),
        ("/console/courses/" + "x" * 300, 422),
        ("/console/courses?after=" + "x" * 300, 422),
        ("/console/batches/nope", 404),
        ("/console/batches/" + "x" * 300, 422),
        ("/console/batches/bA/reports/no-run/x.csv", 404),
    ]:
        answer = client.get(path)
        assert answer.status_code == status, path
        assert message_of(answer.text), path
        assert "Traceback" not in answer.text


def test_a_batch_shows_its_histogram_completions_and_report_runs(school: App) -> None:
    client = console_client(school, "operator", pii=True)
    listed = client.get("/console/batches")
    assert 'href="/console/batches/bA"' in listed.text
    assert 'href="/console/batches/bB"' in listed.text
    only_a = client.get("/console/batches", params={"course": "cA"})
    assert 'href="/console/batches/bB"' not in only_a.text
    page = client.get("/console/batches/bA")
    assert page.status_code == 200
    counts = {
        name: re.search(rf'id="{name}">(\d+)<', page.text)
        for name in ("enrolled", "started", "completed", "left")
    }
    assert {name: int(m.group(1)) for name, m in counts.items() if m} == {
        "enrolled": 5,
        "started": 4,
        "completed": 2,
        "left": 1,
    }
    histogram = section(page.text, 'id="progress-chart"', "</details>")
    assert '<svg viewBox="0 0 640 240" role="img"' in histogram
    assert "<title>0-9: 1</title>" in histogram  # eve
    assert "<title>30-39: 1</title>" in histogram  # dan: one of three required leaves (r4 is optional)
    assert "<title>60-69: 1</title>" in histogram  # cyd: two of three
    assert "<title>100: 2</title>" in histogram
    completions = section(page.text, 'id="completions-chart"', "</details>")
    assert "<title>2026-03-10: 1</title>" in completions
    assert "<title>2026-03-11: 0</title>" in completions  # the days between are drawn
    assert "<title>2026-03-12: 1</title>" in completions
    assert "mentor-7" in page.text  # pii: the mentors are shown
    [csv_link] = re.findall(r'class="csv" href="([^"]+)"', page.text)
    assert "Completion distribution in run" in page.text
    assert re.search(r'status-succeeded">succeeded<', page.text)
    csv = client.get(csv_link)
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.startswith("User ID,")
    assert "ada" in csv.text


def test_a_reader_without_pii_sees_no_csv_link_and_may_not_download_it(school: App) -> None:
    operator = console_client(school, "operator", pii=True)
    [csv_link] = re.findall(r'class="csv" href="([^"]+)"', operator.get("/console/batches/bA").text)
    reader = console_client(school, "reader", pii=False)
    page = reader.get("/console/batches/bA")
    assert page.status_code == 200
    assert 'class="csv"' not in page.text
    assert "pii grant downloads it" in page.text
    assert "mentor-7" not in page.text
    refused = reader.get(csv_link)
    assert refused.status_code == 403
    assert "pii" in message_of(refused.text)
    assert 'href="/console/courses"' in reader.get("/console/").text


def test_course_staff_reach_only_their_courses_batches(school: App) -> None:
    operator = console_client(school, "operator", pii=True)
    [csv_link] = re.findall(r'class="csv" href="([^"]+)"', operator.get("/console/batches/bA").text)
    staff_b = console_client(school, "course_staff", pii=True, scope="course:cB")
    home = staff_b.get("/console/")
    assert 'href="/console/batches"' in home.text
    assert 'href="/console/courses"' not in home.text
    assert staff_b.get("/console/courses").status_code == 403
    assert staff_b.get("/console/courses/cB").status_code == 403
    listed = staff_b.get("/console/batches")
    assert 'href="/console/batches/bB"' in listed.text
    assert 'href="/console/batches/bA"' not in listed.text
    assert staff_b.get("/console/batches/bB").status_code == 200
    other = staff_b.get("/console/batches/bA")
    assert other.status_code == 403
    assert "do not reach the course cA" in message_of(other.text)
    assert staff_b.get(csv_link).status_code == 403
    staff_a = console_client(school, "course_staff", pii=True, scope="organisation:org-a")
    page = staff_a.get("/console/batches/bA")
    assert page.status_code == 200
    [own_link] = re.findall(r'class="csv" href="([^"]+)"', page.text)
    assert staff_a.get(own_link).status_code == 200


def test_the_batch_list_is_paged(app: App) -> None:
    publish(app, "cA")
    for n in range(53):
        add_batch(app, f"b{n:03d}", "cA")
    client = console_client(app, "reader")
    first = client.get("/console/batches")
    assert first.text.count('href="/console/batches/b') == 50
    second = client.get("/console/batches", params={"after": "b049"})
    assert second.text.count('href="/console/batches/b') == 3
    assert "Next page" in first.text
    assert "Next page" not in second.text
