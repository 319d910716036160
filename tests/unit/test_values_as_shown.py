"""Values as a person reads them (issue 14: "status True", "1.1805916207174113e+21"): a message quotes
what was sent as JSON spells it, and the command line's tables show booleans as the JSON output does and
numbers in full, never in exponent form."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from rich.console import Console

from courseinfra.domain.job_requests import (
    Outcome,
    Rejection,
    read_enrolment_update,
    read_relation_cache_request,
)
from courseinfra.domain.quoting import json_text, plain_number
from courseinfra.entrypoints.cli.common import cell, counters_table
from courseinfra.entrypoints.cli.failed_events import kept_table
from courseinfra.services.failed_events.ports import FailedEvent

#: 2**70, an integer beyond 64 bits: orjson reads it as a float.
BEYOND_64_BITS = "1180591620717411303424"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (True, "true"),
        (False, "false"),
        (None, "null"),
        ("2", '"2"'),
        ("application/pdf", '"application/pdf"'),
        (5, "5"),
        (2.5, "2.5"),
        (2.0, "2.0"),
        (1e-7, "0.0000001"),
        (orjson.loads(BEYOND_64_BITS), BEYOND_64_BITS),
        (1e22, "10000000000000000000000"),
        (float("nan"), "NaN"),
        ({"a": [1, True]}, '{"a": [1, true]}'),
    ],
)
def test_a_message_quotes_a_value_as_json_spells_it(value: object, shown: str) -> None:
    assert json_text(value) == shown


def test_no_number_is_shown_in_exponent_form() -> None:
    for value in (1.5e300, 1e-300, 123456789.125, 2.0**100, -3e25):
        text = plain_number(value)
        assert "e" not in text.lower(), text
        assert float(text) == value


def test_a_long_quotation_is_cut() -> None:
    quoted = json_text("x" * 500)
    assert len(quoted) == 80
    assert quoted.endswith("...")


def status_reason(status: str) -> str:
    line = (
        '{"eid":"BE_JOB_REQUEST","edata":{"action":"batch-enrolment-update","userId":"u","courseId":"c",'
        f'"batchId":"b","contents":[{{"contentId":"r1","status":{status}}}]}}}}'
    )
    rejected = read_enrolment_update(orjson.loads(line))
    assert isinstance(rejected, Rejection)
    assert rejected.outcome is Outcome.FAILED
    return rejected.reason


def test_a_bad_status_is_quoted_as_it_was_sent() -> None:
    assert status_reason("true") == "edata.contents[0] (r1): status true is not 0, 1 or 2"
    assert status_reason("null") == "edata.contents[0] (r1): status null is not 0, 1 or 2"
    assert status_reason('"2"') == 'edata.contents[0] (r1): status "2" is not 0, 1 or 2'
    assert status_reason("2.0") == "edata.contents[0] (r1): status 2.0 is not 0, 1 or 2"
    assert (
        status_reason(BEYOND_64_BITS) == f"edata.contents[0] (r1): status {BEYOND_64_BITS} is not 0, 1 or 2"
    )


def test_a_mime_type_and_an_action_are_quoted_as_json() -> None:
    leaf = {"edata": {"action": "post-publish-process", "identifier": "r1", "mimeType": "application/pdf"}}
    skipped = read_relation_cache_request(leaf)
    assert isinstance(skipped, Rejection)
    assert skipped.reason == 'r1 has mimeType "application/pdf"; only collections have relations to cache'
    other = read_relation_cache_request({"edata": {"action": False}})
    assert isinstance(other, Rejection)
    assert other.reason == "edata.action false is not a post-publish action"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (True, "true"),
        (False, "false"),
        (None, ""),
        (7, "7"),
        (1_234_567, "1,234,567"),
        (orjson.loads(BEYOND_64_BITS), "1,180,591,620,717,411,303,424"),
        (0.25, "0.25"),
        (1e-7, "0.0000001"),
        ("text", "text"),
    ],
)
def test_a_table_cell_reads_as_the_json_output_and_in_full(value: object, shown: str) -> None:
    assert cell(value) == shown


def test_the_counters_table_counts_with_thousands_separators(capsys: pytest.CaptureFixture[str]) -> None:
    counters_table({"ingest": {"total": 1_234_567, "failed": 1_000}}, "cumulative")
    printed = capsys.readouterr().err
    assert "1,234,567" in printed
    assert "1,000" in printed
    assert "1234567" not in printed


def test_the_kept_events_table_shows_a_reason_as_it_is() -> None:
    """A reason quotes what was sent: brackets in it are text, not rich markup (a '[/x]' stopped the
    table with a MarkupError)."""
    now = datetime(2026, 12, 6, tzinfo=UTC)
    reason = 'edata.action "[/x] [bold]" is not a post-publish action'
    kept = FailedEvent(
        1, "job", Outcome.SKIPPED, "not-post-publish", reason, "{}", "f.jsonl:1", 1_200, now, now, None
    )
    console = Console(width=300, record=True)
    console.print(kept_table([kept]))
    shown = console.export_text()
    assert reason in shown
    assert "1,200" in shown
