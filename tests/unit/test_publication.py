"""Publication on commit: a commit relays once its block has closed; a relay's own commits do not."""

from __future__ import annotations

import logging

import pytest

from courseinfra.services.messagebus import Publication


def test_a_commit_relays_and_a_commit_within_the_relay_does_not() -> None:
    publication = Publication()
    calls: list[str] = []

    def relay() -> int:
        with publication.relaying() as first:
            calls.append("relay" if first else "nested")
            if first:
                publication.committed()  # a handler's commit inside the relay
            return 0

    publication.relay = relay
    publication.committed()
    publication.committed()
    assert calls == ["relay", "relay"]


def test_nothing_is_relayed_without_a_relay() -> None:
    Publication().committed()  # as in a worker process: the parent relays


def test_a_failing_relay_does_not_undo_or_fail_the_commit(caplog: pytest.LogCaptureFixture) -> None:
    def relay() -> int:
        raise ConnectionError("stream unavailable")

    with caplog.at_level(logging.ERROR):
        Publication(relay).committed()
    assert "the next relay delivers" in caplog.text


def test_relaying_marks_the_thread_until_the_block_ends() -> None:
    publication = Publication()
    with publication.relaying() as first, publication.relaying() as second:
        assert (first, second) == (True, False)
    with publication.relaying() as again:
        assert again
