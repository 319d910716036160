"""Course progress reports on every backend: which batches, what a report holds (a worked example whose
numbers are checked by hand), masking, and atomic replacement of a date's reports."""

from __future__ import annotations

import csv
import json
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from courseinfra.bootstrap import App
from courseinfra.domain.enrolments import CourseBatch
from courseinfra.domain.reports import AcceptedFrameworks, RunStatus
from courseinfra.domain.users import User
from courseinfra.services import content, enrolments
from courseinfra.services.events.ingest import ingest
from courseinfra.services.reports import (
    ReportOptions,
    batches_to_report,
    generate_reports,
    get_run,
    start_run,
)
from courseinfra.settings import Settings
from tests.support.builders import aggregator_clock, collection, leaf, progress_event
from tests.support.cli import COURSEINFRA, Cli
from tests.support.http import api_client

AS_OF = date(2026, 11, 25)
ENROLLED_AT = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
LEFT_AT = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
PROGRESS_AT = datetime(2026, 11, 20, 16, 45, tzinfo=UTC)


def course(identifier: str, framework: str | None) -> dict[str, Any]:
    extra = {} if framework is None else {"framework": framework}
    return collection(
        identifier,
        collection("u1", leaf(f"{identifier}-r1"), leaf(f"{identifier}-r2"), name="Module 1: Basics"),
        collection("u2", leaf(f"{identifier}-r3"), leaf(f"{identifier}-r4"), name="Module 2: Practice"),
        visibility="Default",
        name=f"Course {identifier}",
        **extra,
    )


def add_course(app: App, identifier: str, framework: str | None, *, publish: bool = True) -> None:
    content.put_hierarchy(course(identifier, framework), app.uow_factory())
    if publish:
        content.publish(identifier, app.uow_factory())


def add_batch(
    app: App, batch_id: str, course_id: str, *, start: date = date(2026, 1, 1), end: date | None = None
) -> None:
    enrolments.create_batch(
        CourseBatch(batch_id, course_id, f"Batch {batch_id}", ENROLLED_AT, start_date=start, end_date=end),
        app.uow_factory(),
    )


def options(*frameworks: str, mask: bool = False) -> ReportOptions:
    return ReportOptions(AcceptedFrameworks.of(frameworks or ("TPD",)), mask_personal_data=mask, page_size=2)


@pytest.fixture
def worked_example(app: App) -> App:
    """Batch ``tpd`` of a TPD course of two units (two leaves each), and learners:

    - ``learner-a`` (Asha Rao): every leaf completed: 100, units 100 and 100, completed;
    - ``learner-b`` (Bala Krishnan): one leaf of unit 1: 25, units 50 and 0, started;
    - ``learner-c`` (not in the directory): one leaf of unit 2 opened: 0, units 0 and 0, started;
    - ``learner-d``: enrolled, nothing done: 0, not started;
    - ``learner-e``: enrolled, then unenrolled on 10 November: not in the report.

    The progress is made on 20 November (the aggregator's clock), before the report date.
    """
    add_course(app, "tpdcourse", "TPD")
    app.relay()
    add_batch(app, "tpd", "tpdcourse")
    for user in ("learner-a", "learner-b", "learner-c", "learner-d", "learner-e"):
        enrolments.enrol(user, "tpd", app.uow_factory(), at=ENROLLED_AT)
    enrolments.unenrol("learner-e", "tpd", app.uow_factory(), at=LEFT_AT)
    with app.uow_factory() as uow:
        uow.users.upsert_many(
            [
                User("learner-a", name="Asha Rao", email="asha@example.org"),
                User("learner-b", name="Bala Krishnan", email="bala@example.org"),
                User("learner-d", name="Dev"),
            ],
            ENROLLED_AT,
        )
        uow.commit()
    leaves = [f"tpdcourse-r{n}" for n in range(1, 5)]
    events = [
        progress_event("learner-a", *((leaf_id, 2) for leaf_id in leaves), course="tpdcourse", batch="tpd"),
        progress_event("learner-b", (leaves[0], 2), (leaves[1], 1), course="tpdcourse", batch="tpd"),
        progress_event("learner-c", (leaves[2], 1), course="tpdcourse", batch="tpd"),
    ]
    with aggregator_clock(app, PROGRESS_AT):
        report = ingest(events, "events", app.router, app.uow_factory)
    assert report.rejected == []
    return app


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.reader(stream))


def test_only_ongoing_batches_of_published_courses_of_an_accepted_framework_are_reported(app: App) -> None:
    add_course(app, "tpdcourse", "TPD")
    add_course(app, "spaced", "  tpd ")
    add_course(app, "tp", "TP")
    add_course(app, "pd", "PD")
    add_course(app, "etb", "ETB")
    add_course(app, "nofw", None)
    add_course(app, "draft", "TPD", publish=False)
    add_batch(app, "a-tpd", "tpdcourse")
    add_batch(app, "a-tpd-last-day", "tpdcourse", end=AS_OF)
    add_batch(app, "a-tpd-ended", "tpdcourse", end=AS_OF - timedelta(days=1))
    add_batch(app, "a-tpd-later", "tpdcourse", start=AS_OF + timedelta(days=1))
    add_batch(app, "b-spaced", "spaced")
    add_batch(app, "c-tp", "tp")
    add_batch(app, "d-pd", "pd")
    add_batch(app, "e-etb", "etb")
    add_batch(app, "f-nofw", "nofw")
    add_batch(app, "g-draft", "draft")
    with app.uow_factory() as uow:
        selection = batches_to_report(uow, AcceptedFrameworks.of(["TPD"]), AS_OF)
        both = batches_to_report(uow, AcceptedFrameworks.of(["tpd", "ETB "]), AS_OF)
    assert [b.batch_id for b in selection.selected] == ["a-tpd", "a-tpd-last-day", "b-spaced"]
    assert {(b.batch_id, reason.value) for b, reason in selection.skipped} == {
        ("c-tp", "framework-not-accepted"),
        ("d-pd", "framework-not-accepted"),
        ("e-etb", "framework-not-accepted"),
        ("f-nofw", "course-has-no-framework"),
        ("g-draft", "course-not-published"),
        ("a-tpd-ended", "batch-ended"),
        ("a-tpd-later", "batch-not-started"),
    }
    assert selection.skipped_counts() == {
        "framework-not-accepted": 3,
        "course-has-no-framework": 1,
        "course-not-published": 1,
        "batch-ended": 1,
        "batch-not-started": 1,
    }
    assert [b.batch_id for b in both.selected] == ["a-tpd", "a-tpd-last-day", "b-spaced", "e-etb"]


def test_the_worked_example_report_holds_the_numbers_checked_by_hand(worked_example: App) -> None:
    app = worked_example
    run = generate_reports(app.uow_factory, app.reports, options(), as_of=AS_OF)
    assert run.status is RunStatus.SUCCEEDED
    assert (run.batches_total, run.batches_done, run.rows_written) == (1, 1, 4)
    assert app.reports.files(run.run_id) == [
        "manifest.json",
        "tpd.csv",
        "tpd.progress.svg",
        "tpd.summary.json",
    ]
    rows = read_csv(app.settings.reports_path / AS_OF.isoformat() / "tpd.csv")
    assert rows[0] == [
        "User ID",
        "User Name",
        "Email",
        "Enrolment Date",
        "Course ID",
        "Course Progress",
        "Completion Date",
        "Certificate Status",
        "Module 1: Basics",
        "Module 2: Practice",
    ]
    by_user = {row[0]: row for row in rows[1:]}
    assert sorted(by_user) == ["learner-a", "learner-b", "learner-c", "learner-d"]
    a, b, c, d = (by_user[u] for u in ("learner-a", "learner-b", "learner-c", "learner-d"))
    assert a[1:3] == ["Asha Rao", "asha@example.org"]
    assert a[3] == "2026-11-01 09:30:00"
    assert a[4:6] == ["tpdcourse", "100"]
    assert a[6] != ""
    assert a[7:] == ["Not issued", "100", "100"]
    assert b[1:3] == ["Bala Krishnan", "bala@example.org"]
    assert [b[5], b[6], b[8], b[9]] == ["25", "", "50", "0"]
    assert c[1:3] == ["", ""]
    assert [c[5], c[8], c[9]] == ["0", "0", "0"]
    assert d[1:3] == ["Dev", ""]
    assert [d[5], d[8], d[9]] == ["0", "0", "0"]

    summary = json.loads((app.settings.reports_path / AS_OF.isoformat() / "tpd.summary.json").read_text())
    assert {k: summary[k] for k in ("enrolled", "started", "completed", "completion_rate")} == {
        "enrolled": 4,
        "started": 3,
        "completed": 1,
        "completion_rate": 25.0,
    }
    histogram = summary["progress_histogram"]
    assert {k: v for k, v in histogram.items() if v} == {"0-9": 2, "20-29": 1, "100": 1}
    chart = (app.settings.reports_path / AS_OF.isoformat() / "tpd.progress.svg").read_text()
    assert chart.startswith("<svg")
    assert "<title>0-9%: 2</title>" in chart
    assert "<title>100%: 1</title>" in chart
    manifest = json.loads((app.settings.reports_path / AS_OF.isoformat() / "manifest.json").read_text())
    assert manifest["run_id"] == run.run_id
    assert [item["batch_id"] for item in manifest["reported"]] == ["tpd"]


def test_masking_hides_names_and_emails(worked_example: App) -> None:
    app = worked_example
    generate_reports(app.uow_factory, app.reports, options(mask=True), as_of=AS_OF)
    rows = read_csv(app.settings.reports_path / AS_OF.isoformat() / "tpd.csv")
    by_user = {row[0]: row for row in rows[1:]}
    assert by_user["learner-a"][1:3] == ["A*** R**", "a***@example.org"]
    assert by_user["learner-b"][1:3] == ["B*** K*******", "b***@example.org"]
    assert "Asha" not in (app.settings.reports_path / AS_OF.isoformat() / "tpd.csv").read_text()


def test_a_rerun_replaces_the_dates_reports_and_a_failed_run_leaves_them(
    worked_example: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = worked_example
    first = generate_reports(app.uow_factory, app.reports, options(), as_of=AS_OF)
    second = generate_reports(app.uow_factory, app.reports, options(), as_of=AS_OF)
    assert app.reports.published_run(AS_OF) == second.run_id
    assert app.reports.files(first.run_id) == []

    from courseinfra.adapters.sql.reports import SqlReportReader

    original = SqlReportReader.learners
    pages = {"n": 0}

    def fail_on_second_page(self: SqlReportReader, *args: Any, **kwargs: Any) -> Any:
        pages["n"] += 1
        if pages["n"] == 2:
            raise ConnectionError("database went away")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SqlReportReader, "learners", fail_on_second_page)
    broken = start_run(app.uow_factory, as_of=AS_OF)
    with pytest.raises(ConnectionError):
        generate_reports(app.uow_factory, app.reports, options(), as_of=AS_OF, run_id=broken.run_id)
    failed = get_run(broken.run_id, app.uow_factory)
    assert failed.status is RunStatus.FAILED
    assert failed.error == "ConnectionError: database went away"
    assert app.reports.published_run(AS_OF) == second.run_id
    assert app.reports.files(broken.run_id) == []
    assert sorted(p.name for p in (app.settings.reports_path / "runs").iterdir()) == [second.run_id]
    rows = read_csv(app.settings.reports_path / AS_OF.isoformat() / "tpd.csv")
    assert len(rows) == 5


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def summary_of(app: App, day: date, batch: str = "tpd") -> dict[str, Any]:
    return dict(
        json.loads((app.settings.reports_path / day.isoformat() / f"{batch}.summary.json").read_text())
    )


def test_a_report_of_a_past_date_shows_the_batch_as_it_was_at_the_end_of_that_date(
    worked_example: App,
) -> None:
    """The worked example's progress is made on 20 November and learner-e left on 10 November."""
    app = worked_example
    # On 19 November nothing had been done yet; learner-e had already left.
    generate_reports(app.uow_factory, app.reports, options(), as_of=date(2026, 11, 19))
    rows = read_csv(app.settings.reports_path / "2026-11-19" / "tpd.csv")
    assert [(row[0], row[5], row[6], row[8], row[9]) for row in rows[1:]] == [
        (user, "0", "", "0", "0") for user in ("learner-a", "learner-b", "learner-c", "learner-d")
    ]
    before = summary_of(app, date(2026, 11, 19))
    assert {k: before[k] for k in ("enrolled", "started", "completed", "progress_basis")} == {
        "enrolled": 4,
        "started": 0,
        "completed": 0,
        "progress_basis": "rebuilt",
    }
    assert "end of the date" in before["progress_note"]
    # On 9 November learner-e was still enrolled (and had done nothing).
    generate_reports(app.uow_factory, app.reports, options(), as_of=date(2026, 11, 9))
    assert summary_of(app, date(2026, 11, 9))["enrolled"] == 5
    # Before anyone enrolled, the batch had no participant.
    generate_reports(app.uow_factory, app.reports, options(), as_of=date(2026, 10, 31))
    assert summary_of(app, date(2026, 10, 31))["enrolled"] == 0
    # On the day the progress was made, the rebuilt report is the report of today's numbers.
    rebuilt = generate_reports(app.uow_factory, app.reports, options(), as_of=date(2026, 11, 20))
    today = datetime.now(UTC).date()
    current = generate_reports(app.uow_factory, app.reports, options(), as_of=today)
    assert current.outcome["progress_basis"] == "current"
    assert rebuilt.outcome["progress_basis"] == "rebuilt"
    assert read_csv(app.settings.reports_path / "2026-11-20" / "tpd.csv") == read_csv(
        app.settings.reports_path / today.isoformat() / "tpd.csv"
    )
    counted = ("enrolled", "started", "completed", "completion_rate", "progress_histogram")
    assert {k: summary_of(app, date(2026, 11, 20))[k] for k in counted} == {
        k: summary_of(app, today)[k] for k in counted
    }


def test_the_issues_reproduction_a_report_of_yesterday_counts_nothing_done_today(
    app: App, settings: Settings
) -> None:
    """Publish, create a batch, enrol and complete every leaf today; a report of yesterday counts none
    of it (the batch, with no start date, is reported, empty)."""
    cli = Cli(settings)
    assert cli("content", "publish", str(EXAMPLES / "democourse.json")).returncode == 0
    for command in (
        ("batches", "create", "--course", "democourse", "--batch", "b1", "--name", "B1"),
        ("enrol", "learner-1", "b1"),
    ):
        done = cli(*command)
        assert done.returncode == 0, done.stderr
    event = progress_event(
        "learner-1", *((f"resource{n}", 2) for n in range(1, 5)), course="democourse", batch="b1"
    )
    assert cli("ingest", "-", stdin=event + "\n").returncode == 0
    env: dict[str, str] = {}
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    out = settings.home / "out"
    done = cli("reports", "generate", "--out", str(out), "--as-of", yesterday.isoformat(), env=env)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    [reported] = run["outcome"]["reported"]
    assert {k: reported["summary"][k] for k in ("enrolled", "started", "completed")} == {
        "enrolled": 0,
        "started": 0,
        "completed": 0,
    }
    assert read_csv(out / yesterday.isoformat() / "b1.csv")[1:] == []
    today = cli("reports", "generate", "--out", str(out), env=env)
    [now] = json.loads(today.stdout)["outcome"]["reported"]
    assert {k: now["summary"][k] for k in ("enrolled", "started", "completed")} == {
        "enrolled": 1,
        "started": 1,
        "completed": 1,
    }


def test_a_report_run_never_holds_the_aggregator_back(worked_example: App, settings: Settings) -> None:
    """While a run reads a batch, another process applies progress (on SQLite a report that took the
    write lock made it wait for its busy timeout, 30 s, and fail)."""
    from courseinfra.adapters.sql.reports import SqlReportReader

    app, cli = worked_example, Cli(settings)
    original = SqlReportReader.learners
    ingested: list[subprocess.CompletedProcess[str]] = []

    def learners_while_another_process_writes(self: SqlReportReader, *args: Any, **kwargs: Any) -> Any:
        if not ingested:
            event = progress_event("learner-d", ("tpdcourse-r1", 2), course="tpdcourse", batch="tpd")
            ingested.append(
                subprocess.run(
                    [*COURSEINFRA, "ingest", "-"],
                    input=event + "\n",
                    env=cli.env,
                    capture_output=True,
                    text=True,
                    timeout=20,
                    check=False,
                )
            )
        return original(self, *args, **kwargs)

    SqlReportReader.learners = learners_while_another_process_writes  # type: ignore[method-assign]
    try:
        run = generate_reports(app.uow_factory, app.reports, options(), as_of=datetime.now(UTC).date())
    finally:
        SqlReportReader.learners = original  # type: ignore[method-assign]
    assert run.status is RunStatus.SUCCEEDED
    [done] = ingested
    assert done.returncode == 0, done.stderr
    with app.uow_factory().reading() as uow:
        [enrolment] = uow.enrolments.list_for_user("learner-d")
    assert enrolment.state.content_status == {"tpdcourse-r1": 2}


def test_requested_batches_narrow_the_run_and_unknown_ones_are_reported(worked_example: App) -> None:
    app = worked_example
    add_course(app, "etb", "ETB")
    add_batch(app, "etb-batch", "etb")
    run = generate_reports(
        app.uow_factory, app.reports, options(), as_of=AS_OF, batch_ids=["tpd", "etb-batch", "nope"]
    )
    assert [item["batch_id"] for item in run.outcome["reported"]] == ["tpd"]
    assert run.outcome["skipped"] == [
        {"batch_id": "etb-batch", "course_id": "etb", "reason": "framework-not-accepted"},
        {"batch_id": "nope", "reason": "batch-not-found"},
    ]


def test_the_api_starts_a_run_shows_its_status_and_serves_its_files(worked_example: App) -> None:
    app = worked_example
    with api_client(app) as client:
        selection = client.get("/v1/reports/batches", params={"as_of": AS_OF.isoformat()})
        assert selection.status_code == 200, selection.text
        assert selection.json()["selected"] == [{"batch_id": "tpd", "course_id": "tpdcourse"}]
        started = client.post("/v1/reports/runs", json={"as_of": AS_OF.isoformat()})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        # The test client runs background tasks before it answers: the run is over.
        status = client.get(f"/v1/reports/runs/{run_id}").json()
        assert status["status"] == "succeeded"
        assert (status["batches_done"], status["rows_written"]) == (1, 4)
        assert status["files"] == ["manifest.json", "tpd.csv", "tpd.progress.svg", "tpd.summary.json"]
        csv_file = client.get(f"/v1/reports/runs/{run_id}/files/tpd.csv")
        assert csv_file.status_code == 200
        assert csv_file.headers["content-type"].startswith("text/csv")
        assert csv_file.text.splitlines()[0].startswith("User ID,User Name,Email,")
        chart = client.get(f"/v1/reports/runs/{run_id}/files/tpd.progress.svg")
        assert chart.headers["content-type"] == "image/svg+xml"
        missing = client.get(f"/v1/reports/runs/{run_id}/files/nope.csv")
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "report-file-not-found")
        escape = client.get(f"/v1/reports/runs/{run_id}/files/..%2Fmanifest.json")
        assert escape.status_code == 404
        unknown = client.get("/v1/reports/runs/nope")
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "report-run-not-found")
        assert [run["run_id"] for run in client.get("/v1/reports/runs").json()] == [run_id]


def test_the_cli_generates_into_a_folder_and_shows_the_run(
    worked_example: App, settings: Settings, tmp_path: Path
) -> None:
    cli = Cli(settings)
    out = tmp_path / "out"
    done = cli("reports", "generate", "--out", str(out), "--as-of", AS_OF.isoformat())
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert (run["status"], run["rows_written"]) == ("succeeded", 4)
    assert "1 batch, 4 rows" in done.stderr
    assert len(read_csv(out / AS_OF.isoformat() / "tpd.csv")) == 5
    shown = cli("reports", "status", run["run_id"])
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "succeeded"
    masked = cli(
        "reports",
        "generate",
        "--out",
        str(out),
        "--as-of",
        AS_OF.isoformat(),
        env={"COURSEINFRA_REPORTS_MASK_PERSONAL_DATA": "true"},
    )
    assert masked.returncode == 0, masked.stderr
    assert "Asha Rao" not in (out / AS_OF.isoformat() / "tpd.csv").read_text()
    none = cli(
        "reports",
        "batches",
        "--as-of",
        AS_OF.isoformat(),
        env={"COURSEINFRA_REPORTS_ACCEPTED_FRAMEWORKS": "TP,PD"},
    )
    assert json.loads(none.stdout)["skipped"] == [
        {"batch_id": "tpd", "course_id": "tpdcourse", "reason": "framework-not-accepted"}
    ]
    unknown = cli("reports", "status", "nope")
    assert unknown.returncode == 1
    assert "report-run-not-found" in unknown.stderr
