"""The ``courseinfra`` command as an operator runs it: a real process, on every backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from courseinfra.settings import Settings
from tests.support.cli import Cli
from tests.support.servers import EXAMPLES


@pytest.fixture
def cli(settings: Settings) -> Cli:
    return Cli(settings)


def test_publish_then_read_the_cache(cli: Cli) -> None:
    published = cli("content", "publish", str(EXAMPLES / "democourse.json"))
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["cache"] == {
        "ancestors": 4,
        "leafnodes": 3,
        "optionalnodes": 2,
        "units": 2,
    }
    leaves = cli("cache", "get", "democourse:leafnodes")
    assert json.loads(leaves.stdout) == ["resource1", "resource2", "resource3", "resource4"]
    ancestors = cli("cache", "get", "democourse:resource3:ancestors")
    assert json.loads(ancestors.stdout) == ["courseunit2", "democourse"]
    assert json.loads(cli("cache", "get", "no:such:key").stdout) is None


def test_ingest_goes_on_past_bad_lines_and_keeps_them(cli: Cli) -> None:
    assert cli("content", "put", str(EXAMPLES / "democourse.json")).returncode == 0
    run = cli("ingest", str(EXAMPLES / "post-publish-events.jsonl"), "--json")
    assert run.returncode == 1, "a failed event makes the exit code 1"
    report = json.loads(run.stdout)
    assert report["jobs"]["relation-cache-updater"] == {
        "cache-deletes": 0,
        "cache-writes": 11,
        "db-reads": 2,
        "failed": 2,
        "skipped": 1,
        "success": 1,
        "total": 4,
    }
    assert report["jobs"]["ingest"] == {"failed": 1, "total": 1}
    assert "post-publish-events.jsonl:5: malformed-json" in run.stderr
    kept = [json.loads(line) for line in cli("failed", "list", "--json", "--skipped").stdout.splitlines()]
    assert sorted((k["source"], k["code"]) for k in kept) == [
        ("post-publish-events.jsonl:2", "not-a-collection"),
        ("post-publish-events.jsonl:3", "hierarchy-not-found"),
        ("post-publish-events.jsonl:4", "missing-identifier"),
        ("post-publish-events.jsonl:5", "malformed-json"),
    ]
    counters = json.loads(cli("counters", "--json").stdout)
    assert counters["relation-cache-updater"]["failed"] == 2


def test_kept_events_are_listed_and_replayed_by_code(cli: Cli) -> None:
    """``--code`` lists and (with ``--all``) replays only the events kept with that code; a code with
    ids is refused (it chooses among all open events)."""
    assert cli("content", "put", str(EXAMPLES / "democourse.json")).returncode == 0
    assert cli("ingest", str(EXAMPLES / "post-publish-events.jsonl")).returncode == 1
    listed = cli("failed", "list", "--json", "--skipped", "--code", "hierarchy-not-found").stdout.splitlines()
    assert [json.loads(line)["source"] for line in listed] == ["post-publish-events.jsonl:3"]
    replayed = cli("failed", "replay", "--all", "--code", "malformed-json")
    assert [json.loads(line)["resolved"] for line in replayed.stdout.splitlines()] == [False]
    refused = cli("failed", "replay", "1", "--code", "malformed-json")
    assert refused.returncode == 2
    assert "--all" in refused.stderr


def test_ingesting_a_file_again_counts_attempts_instead_of_copying_its_bad_lines(cli: Cli) -> None:
    events = str(EXAMPLES / "post-publish-events.jsonl")
    assert cli("content", "put", str(EXAMPLES / "democourse.json")).returncode == 0
    assert cli("ingest", events).returncode == 1
    again = cli("ingest", events, "--json")
    assert again.returncode == 1, "the bad lines are still bad"
    assert len(json.loads(again.stdout)["rejected"]) == 4
    kept = [json.loads(line) for line in cli("failed", "list", "--json", "--skipped").stdout.splitlines()]
    assert sorted((k["source"], k["attempts"]) for k in kept) == [
        ("post-publish-events.jsonl:2", 2),
        ("post-publish-events.jsonl:3", 2),
        ("post-publish-events.jsonl:4", 2),
        ("post-publish-events.jsonl:5", 2),
    ]
    counters = json.loads(cli("counters", "--json").stdout)
    assert counters["relation-cache-updater"]["failed"] == 4


def test_replay_resolves_an_event_once_its_content_exists(cli: Cli, tmp_path: Path) -> None:
    event = json.dumps(
        {
            "edata": {
                "action": "post-publish-process",
                "identifier": "democourse",
                "mimeType": "application/vnd.ekstep.content-collection",
            }
        }
    )
    assert cli("ingest", "-", stdin=event + "\n").returncode == 1
    [kept] = [json.loads(line) for line in cli("failed", "list", "--json").stdout.splitlines()]
    assert kept["source"] == "stdin:1"
    assert cli("content", "put", str(EXAMPLES / "democourse.json")).returncode == 0
    replay = cli("failed", "replay", str(kept["id"]))
    assert replay.returncode == 0, replay.stderr
    assert json.loads(replay.stdout)["resolved"] is True
    assert cli("failed", "list", "--json").stdout == ""
    assert json.loads(cli("cache", "get", "courseunit1:leafnodes").stdout) == ["resource1", "resource2"]


def test_bad_setting_fails_at_start_naming_the_variable(cli: Cli) -> None:
    run = cli("cache", "get", "x", env={"COURSEINFRA_CACHE_LAYOUT": "flat"})
    assert run.returncode == 2
    assert run.stderr.startswith("courseinfra: invalid setting COURSEINFRA_CACHE_LAYOUT:")
    assert len(run.stderr.strip().splitlines()) == 1


def test_a_hierarchy_file_that_is_not_json_names_the_line(cli: Cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "identifier": "x",\n  oops\n}\n')
    run = cli("content", "publish", str(broken))
    assert run.returncode == 1
    assert "invalid JSON at line 3" in run.stderr


def test_an_invalid_hierarchy_is_refused_with_its_code(cli: Cli, tmp_path: Path) -> None:
    resource = tmp_path / "resource.json"
    resource.write_text(json.dumps({"identifier": "r1", "mimeType": "application/pdf"}))
    run = cli("content", "publish", str(resource))
    assert run.returncode == 1
    assert "invalid-hierarchy" in run.stderr


def test_ingest_progress_off_a_terminal_is_a_line_with_the_total_the_rate_and_the_time_left(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from courseinfra.entrypoints.cli import events as cli_module

    monkeypatch.setattr(cli_module, "PROGRESS_LINE_EVERY", 0.0)
    with cli_module._ingest_progress("ingest events.jsonl", 1000, True) as advance:
        advance(250)
    printed = capsys.readouterr().err
    assert "ingest events.jsonl: 250 lines of 1,000 (25%), " in printed
    assert " lines/s, about " in printed
    assert printed.rstrip().endswith(" left")


def test_the_counters_table_keeps_every_name_whole_off_a_terminal(cli: Cli) -> None:
    assert cli("content", "publish", str(EXAMPLES / "democourse.json")).returncode == 0
    table = cli("counters").stderr
    assert "course-metrics-aggregator" in table
    assert "cache-writes" in table
    assert "…" not in table


def test_a_report_run_counts_in_words(cli: Cli) -> None:
    assert cli("content", "publish", str(EXAMPLES / "democourse.json")).returncode == 0
    assert cli("batches", "create", "--course", "democourse", "--batch", "b1", "--name", "B1").returncode == 0
    done = cli("reports", "generate")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["batches_done"] == 1
    assert done.stderr.startswith("1 batch, 0 rows in "), done.stderr
