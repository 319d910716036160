"""The relation cache job end to end, on every backend: publish, ingest, bad input, replay, republish."""

from __future__ import annotations

import pytest

from courseinfra.bootstrap import App
from courseinfra.domain.cache_layout import CacheList, CacheSet, CacheText
from courseinfra.domain.events import ContentPublished
from courseinfra.domain.job_requests import Outcome
from courseinfra.services import content
from courseinfra.services.cache import published_roots, rebuild_requests
from courseinfra.services.events.ingest import ingest, replay_failed
from courseinfra.services.events.ports import OutboxMessage
from tests.support.builders import collection, leaf, post_publish_event, relayed_by_hand

COURSE = collection(
    "course",
    collection("unit1", leaf("r1"), leaf("r2")),
    collection("unit2", leaf("r3"), collection("unit2.1", leaf("r4"))),
    visibility="Default",
)


def publish(app: App, tree: dict[str, object]) -> None:
    content.put_hierarchy(tree, app.uow_factory())
    content.publish(str(tree["identifier"]), app.uow_factory())
    app.relay()


def test_publishing_builds_the_cache(app: App) -> None:
    publish(app, COURSE)
    assert app.cache.get("course:leafnodes") == CacheSet(frozenset({"r1", "r2", "r3", "r4"}))
    assert app.cache.get("course:r4:ancestors") == CacheList(("unit2.1", "unit2", "course"))
    assert isinstance(app.cache.get("unit2:metadata"), CacheText)


def test_republishing_replaces_and_deletes_removed_units(app: App) -> None:
    publish(app, COURSE)
    smaller = collection("course", collection("unit1", leaf("r1"), leaf("r5")), visibility="Default")
    publish(app, smaller)
    assert app.cache.get("course:leafnodes") == CacheSet(frozenset({"r1", "r5"}))
    assert app.cache.get("unit1:leafnodes") == CacheSet(frozenset({"r1", "r5"}))
    removed = [
        "unit2:leafnodes",
        "unit2.1:leafnodes",
        "course:r2:ancestors",
        "course:r3:ancestors",
        "course:r4:ancestors",
        "unit2:metadata",
        "unit2.1:metadata",
    ]
    assert app.cache.get_many(removed) == dict.fromkeys(removed)
    assert app.cache.get("course:r5:ancestors") == CacheList(("unit1", "course"))
    with app.uow_factory() as uow:
        counters = uow.counters.all()["relation-cache-updater"]
    assert counters["cache-deletes"] == len(removed)
    assert counters["success"] == 2


def test_ingest_processes_good_events_and_keeps_every_bad_one(app: App) -> None:
    content.put_hierarchy(COURSE, app.uow_factory())
    lines = [
        post_publish_event("course"),
        "{not json",
        post_publish_event("missing-course"),
        post_publish_event("r1", mime_type="application/pdf"),
        '{"eid": "BE_JOB_REQUEST", "edata": {"action": "post-publish-process", "mimeType": "x"}}',
        '["an", "array"]',
        '{"eid": "BE_JOB_REQUEST", "edata": {"action": "something-else"}}',
        "",
        post_publish_event("course", action="relation-cache-update"),
    ]
    report = ingest(lines, "events.jsonl", app.router, app.uow_factory)
    assert [(r.source, r.outcome, r.code) for r in report.rejected] == [
        ("events.jsonl:2", Outcome.FAILED, "malformed-json"),
        ("events.jsonl:3", Outcome.FAILED, "hierarchy-not-found"),
        ("events.jsonl:4", Outcome.SKIPPED, "not-a-collection"),
        ("events.jsonl:5", Outcome.FAILED, "missing-identifier"),
        ("events.jsonl:6", Outcome.FAILED, "not-an-object"),
        ("events.jsonl:7", Outcome.SKIPPED, "no-job"),
    ]
    assert "line 1 column 2" in report.rejected[0].reason
    job = report.counters["relation-cache-updater"].counts
    assert (job["total"], job["success"], job["failed"], job["skipped"]) == (5, 2, 2, 1)
    assert app.cache.get("course:leafnodes") == CacheSet(frozenset({"r1", "r2", "r3", "r4"}))
    with app.uow_factory() as uow:
        kept = uow.failed_events.list(outcomes=(Outcome.FAILED, Outcome.SKIPPED))
        stored = uow.counters.all()
    assert sorted(e.source for e in kept) == sorted(r.source for r in report.rejected)
    assert next(e for e in kept if e.code == "malformed-json").payload == "{not json"
    assert stored["relation-cache-updater"] == job


def test_an_input_ingested_twice_keeps_each_bad_event_once(app: App) -> None:
    content.put_hierarchy(COURSE, app.uow_factory())
    lines = [post_publish_event("course"), post_publish_event("missing-course")]
    first = ingest(lines, "events.jsonl", app.router, app.uow_factory)
    second = ingest(lines, "events.jsonl", app.router, app.uow_factory)
    # Each report lists what its run saw; the store keeps the event once and counts the attempts.
    assert [(r.source, r.code) for r in first.rejected] == [("events.jsonl:2", "hierarchy-not-found")]
    assert second.rejected == first.rejected
    with app.uow_factory() as uow:
        [kept] = uow.failed_events.list(include_resolved=True)
        open_by_job = uow.failed_events.count_open()
        counters = uow.counters.all()["relation-cache-updater"]
    assert (kept.source, kept.code, kept.attempts) == ("events.jsonl:2", "hierarchy-not-found", 2)
    assert open_by_job == {"relation-cache-updater": 1}
    assert (counters["total"], counters["success"], counters["failed"]) == (4, 2, 2)


def test_small_chunks_give_the_same_result(app: App) -> None:
    content.put_hierarchy(COURSE, app.uow_factory())
    lines = [post_publish_event("course"), "oops", post_publish_event("nope")] * 3
    report = ingest(lines, "in", app.router, app.uow_factory, chunk_size=2)
    assert len(report.rejected) == 6
    with app.uow_factory() as uow:
        assert uow.counters.all()["relation-cache-updater"]["total"] == 6
        assert uow.counters.all()["ingest"]["failed"] == 3


def test_a_failed_event_is_replayed_once_its_cause_is_fixed(app: App) -> None:
    ingest([post_publish_event("course")], "in", app.router, app.uow_factory)
    with app.uow_factory() as uow:
        [kept] = uow.failed_events.list()
    assert kept.code == "hierarchy-not-found"
    [again] = replay_failed([kept], app.router, app.uow_factory)
    assert not again.resolved
    content.put_hierarchy(COURSE, app.uow_factory())
    [done] = replay_failed([kept], app.router, app.uow_factory)
    assert done.resolved
    assert app.cache.get("unit1:leafnodes") == CacheSet(frozenset({"r1", "r2"}))
    with app.uow_factory() as uow:
        assert uow.failed_events.list() == []
        [resolved] = uow.failed_events.list(include_resolved=True)
    assert resolved.attempts == 3
    assert resolved.resolved_at is not None


def test_an_invalid_stored_hierarchy_fails_with_its_reason(app: App) -> None:
    with app.uow_factory() as uow:
        uow.hierarchies.put(
            "broken", "application/vnd.ekstep.content-collection", {"identifier": "broken", "mimeType": "x"}
        )
        uow.commit()
    report = ingest([post_publish_event("broken")], "in", app.router, app.uow_factory)
    [rejected] = report.rejected
    assert rejected.code == "invalid-hierarchy"
    assert "is not a collection" in rejected.reason


def test_a_handler_failure_leaves_the_outbox_message_for_the_next_relay(app: App) -> None:
    relayed_by_hand(app)
    content.put_hierarchy(COURSE, app.uow_factory())
    calls: list[int] = []

    def flaky(message: OutboxMessage) -> None:
        calls.append(message.id)
        if len(calls) == 1:
            raise ConnectionError("cache unreachable")

    app.bus.subscribe(ContentPublished.event_type, flaky)
    content.publish("course", app.uow_factory())
    app.relay()
    with app.uow_factory() as uow:
        [pending] = uow.outbox.pending()
    assert pending.attempts == 1
    app.relay()
    with app.uow_factory() as uow:
        assert uow.outbox.pending() == []
    assert len(calls) == 2


def test_publish_of_unknown_content_is_refused(app: App) -> None:
    with pytest.raises(content.ContentNotFound):
        content.publish("nothing", app.uow_factory())


def test_put_refuses_a_root_that_is_not_the_one_named(app: App) -> None:
    with pytest.raises(content.IdentifierMismatch):
        content.put_hierarchy(COURSE, app.uow_factory(), identifier="other")


def test_rebuild_restores_every_published_root_after_the_cache_is_lost(app: App) -> None:
    publish(app, COURSE)
    publish(app, collection("other", collection("o1", leaf("x")), visibility="Default"))
    content.put_hierarchy(collection("draft", leaf("d"), visibility="Default"), app.uow_factory())
    app.cache.clear()
    roots = list(published_roots(app.uow_factory, page=1))
    assert roots == ["course", "other"]
    report = ingest(rebuild_requests([*roots, "never-stored"]), "rebuild", app.router, app.uow_factory)
    assert app.cache.get("course:leafnodes") == CacheSet(frozenset({"r1", "r2", "r3", "r4"}))
    assert app.cache.get("o1:leafnodes") == CacheSet(frozenset({"x"}))
    assert app.cache.get("draft:leafnodes") is None
    assert [(r.source, r.code) for r in report.rejected] == [("rebuild:3", "hierarchy-not-found")]
