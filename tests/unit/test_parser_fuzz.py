"""Fuzzing the parsers of untrusted input: event lines (as ``courseinfra ingest`` reads them) and content
hierarchies (as content put reads them). Whatever the input, a parser returns a value, or a reasoned
rejection, or raises the project's own :class:`DomainError` with a message: never another exception."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from courseinfra.domain.errors import DomainError, InvalidHierarchy
from courseinfra.domain.hierarchy import (
    COLLECTION_MIME_TYPE,
    MAX_NESTING,
    check_document,
    compute_relations,
    nesting_depth,
    parse_hierarchy,
)
from courseinfra.domain.job_requests import (
    EnrolmentUpdateRequest,
    Outcome,
    Rejection,
    RelationCacheRequest,
    event_action,
    partition_of,
    read_enrolment_update,
    read_relation_cache_request,
)
from courseinfra.services.events.ingest import BadLine, parse_line, read_lines
from courseinfra.services.events.jobs import EventResult, IncomingEvent
from tests.support.builders import collection, leaf, post_publish_event, progress_event
from tests.support.hostile import (
    deep_values,
    dumps,
    hostile_events,
    hostile_hierarchies,
    hostile_json_text,
    hostile_text,
    hostile_values,
    nested,
    nested_text,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_LINE = 1024

# --- event lines ---


def expected_lines(data: bytes) -> int:
    """The lines ``read_lines`` yields for ``data``: one per line feed, and a last one without it."""
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def strings_of(value: Any) -> Iterator[str]:
    """The keys and strings of a JSON value, walked without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_event_line(text: str, source: str = "fuzz:1") -> IncomingEvent | EventResult:
    """One line through the ingest parser and the domain's readers of job requests: a value or a
    reasoned rejection, never an exception."""
    parsed = parse_line(text, source)
    if isinstance(parsed, EventResult):
        assert parsed.outcome is Outcome.FAILED
        assert parsed.code
        assert parsed.reason.startswith(source)
        return parsed
    assert isinstance(parsed.event, dict)
    assert parsed.payload == text
    assert not any("\x00" in item for item in strings_of(parsed.event))
    action = event_action(parsed.event)
    assert action is None or isinstance(action, str)
    for read in (read_relation_cache_request, read_enrolment_update):
        request = read(parsed.event)
        if isinstance(request, Rejection):
            assert request.code
            assert request.reason
        else:
            assert isinstance(request, RelationCacheRequest | EnrolmentUpdateRequest)
    assert 0 <= partition_of(parsed.event, 4) < 4
    return parsed


def check_stream(data: bytes) -> None:
    lines = list(read_lines(io.BytesIO(data), max_bytes=MAX_LINE))
    assert len(lines) == expected_lines(data)
    for number, line in enumerate(lines, start=1):
        if isinstance(line, BadLine):
            assert line.code in {"invalid-utf8", "line-too-long", "nul-byte"}
            assert line.reason
            assert "\x00" not in line.text  # no store of text keeps a NUL
            assert len(line.text.encode("utf-8", "surrogatepass")) <= 4 * MAX_LINE
            assert not any(0xD800 <= ord(c) <= 0xDFFF for c in line.text)
            continue
        assert isinstance(line, str)
        assert len(line.removesuffix("\n").encode()) <= MAX_LINE
        if line.strip():
            check_event_line(line.rstrip("\r\n"), f"fuzz:{number}")


@FUZZ
@given(st.binary(max_size=4 * MAX_LINE))
@example(b"")
@example(b"\n\n\r\n")
@example(b"\xff\xfe\n\xc3\x28\n\xed\xa0\x80\n")  # not UTF-8; the last one a UTF-8-encoded surrogate
@example(b"x" * MAX_LINE + b"\n" + b"y" * (MAX_LINE + 1) + b"\n" + b"z" * (3 * MAX_LINE))
@example(b'{"a": "\x00"}\n\x00\n')
def test_any_bytes_are_read_as_lines_and_each_line_is_an_event_or_a_reasoned_failure(data: bytes) -> None:
    check_stream(data)


@FUZZ
@given(
    st.lists(
        st.one_of(
            hostile_json_text,
            hostile_events.map(dumps),
            st.builds(progress_event, hostile_text, st.tuples(hostile_text, st.integers(-3, 5))),
            st.builds(post_publish_event, hostile_text, hostile_text, hostile_text),
        ),
        max_size=8,
    ),
    st.sampled_from(["\n", "\r\n"]),
)
def test_hostile_json_lines_are_events_or_reasoned_failures(texts: list[str], newline: str) -> None:
    data = b"".join(text.encode("utf-8", "surrogatepass") + newline.encode() for text in texts)
    check_stream(data)


@FUZZ
@given(hostile_json_text | hostile_events.map(dumps))
@example('{"eid": "BE_JOB_REQUEST", "edata": {"action": "batch-enrolment-update", "userId": "\\u0000"}}')
@example('{"edata": {"action": "batch-enrolment-update", "contents": [{"contentId": "c", "status": 1e400}]}}')
@example('{"edata": {"action": "batch-enrolment-update", "contents": [{"contentId": "c", "status": true}]}}')
@example('{"edata": {"action": "post-publish-process", "identifier": ["x"]}}')
@example(nested_text(100_000, "["))
def test_a_line_of_text_is_an_event_or_a_reasoned_failure(text: str) -> None:
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return  # read_lines decodes strictly: a line never holds a lone surrogate
    check_event_line(text)


def test_a_nul_byte_or_a_nul_character_makes_a_failed_line_kept_without_it() -> None:
    """Regression: PostgreSQL keeps no NUL in text or JSONB, so that a NUL byte in a line (kept
    verbatim) or an event with ``\\u0000`` (looked up, stored) failed ingest with a DataError."""
    [bad, good] = read_lines(io.BytesIO(b'{"a": "\x00"}\n{"a": "\\\\u0000"}\n'), max_bytes=MAX_LINE)
    assert isinstance(bad, BadLine)
    assert (bad.code, bad.text) == ("nul-byte", '{"a": "\\x00"}')
    assert "byte 7" in bad.reason
    assert isinstance(parse_line(str(good).rstrip(), "s"), IncomingEvent)  # an escaped backslash: no NUL
    failed = parse_line('{"edata": {"userId": "u\\u0000"}}', "s:1")
    assert isinstance(failed, EventResult)
    assert (failed.outcome, failed.code) == (Outcome.FAILED, "nul-character")


def test_every_built_event_parses_to_itself() -> None:
    line = progress_event("u1", ("r1", 2))
    parsed = check_event_line(line)
    assert isinstance(parsed, IncomingEvent)
    assert isinstance(read_enrolment_update(parsed.event), EnrolmentUpdateRequest)
    parsed = check_event_line(post_publish_event("course"))
    assert isinstance(parsed, IncomingEvent)
    assert isinstance(read_relation_cache_request(parsed.event), RelationCacheRequest)


# --- hierarchies ---


def check_hierarchy(raw: Any) -> None:
    """What content put does before it stores a hierarchy, and what the relation cache job does with a
    stored one: a flat hierarchy and its relations (of a document orjson writes as it is and reads
    back equal), or a :class:`DomainError` with a message."""
    refused: DomainError | None = None
    try:
        check_document(raw)
        assert nesting_depth(raw, MAX_NESTING) <= MAX_NESTING
        flat = parse_hierarchy(raw)
        relations = compute_relations(flat)
    except DomainError as error:
        refused = error
    if refused is not None:
        assert str(refused).strip()
        assert refused.code
        return
    assert orjson.loads(orjson.dumps(raw)) == raw  # what check_document admits, the store keeps
    assert flat.root_id == raw["identifier"]
    assert relations.root_id == flat.root_id
    for leaf_id, path in relations.ancestors.items():
        assert path[-1] == flat.root_id, leaf_id


def chain(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = leaf("deepest")
    for level in range(levels, 0, -1):
        node = collection(f"unit-{level}", node)
    return collection("deep", node)


@FUZZ
@given(st.one_of(hostile_hierarchies(), hostile_values(), deep_values, st.builds(chain, st.integers(0, 300))))
@example({"identifier": "r", "mimeType": COLLECTION_MIME_TYPE, "children": [{"identifier": float("nan")}]})
@example({"identifier": "r", "mimeType": COLLECTION_MIME_TYPE, "children": {"identifier": "x"}})
@example({"identifier": "r", "mimeType": COLLECTION_MIME_TYPE, "children": ["x", None, 1]})
@example({"identifier": "\x00", "mimeType": COLLECTION_MIME_TYPE, "channel": "x" * 300, "children": []})
@example({"identifier": 10**400, "mimeType": COLLECTION_MIME_TYPE})
@example(collection("r", collection("u"), collection("u")))
@example(collection("r", collection("u", leaf("r"))))
@example(nested(100_000))
def test_any_json_value_is_a_hierarchy_or_invalid_hierarchy(raw: Any) -> None:
    check_hierarchy(raw)


def load_like_the_entry_points(data: bytes) -> list[Any]:
    """``data`` read as the entry points read a hierarchy (``json.loads``: the API's body, the CLI's
    file) and as the store reads its JSON (orjson); what one cannot read is left out (each entry point
    answers that itself)."""
    documents = []
    with contextlib.suppress(orjson.JSONDecodeError):
        documents.append(orjson.loads(data))
    with contextlib.suppress(UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        documents.append(json.loads(data.decode("utf-8")))
    return documents


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=2048),
        hostile_json_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
        hostile_hierarchies().map(lambda h: dumps(h).encode()),
    )
)
@example(b'{"identifier": "r", "mimeType": "application/vnd.ekstep.content-collection", "identifier": 1}')
@example(b'{"identifier": "r", "mimeType": "application/vnd.ekstep.content-collection", "children": [NaN]}')
@example(nested_text(5000, "{").encode())
def test_any_bytes_are_a_hierarchy_or_invalid_hierarchy(data: bytes) -> None:
    for document in load_like_the_entry_points(data):
        check_hierarchy(document)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\x00b", "NUL character"),
        ("\ud800", "lone surrogate"),
        (2**64, "65 bits is beyond 64 bits"),
        (-(2**63) - 1, "beyond 64 bits"),
        (10**5000, "beyond 64 bits"),
        (float("nan"), "nan is not a JSON number"),
        (float("-inf"), "-inf is not a JSON number"),
        ((1, 2), "a tuple is not a JSON value"),
    ],
    ids=["nul", "surrogate", "2**64", "-2**63-1", "10**5000", "nan", "-inf", "tuple"],
)
def test_a_value_the_store_cannot_keep_is_invalid_hierarchy(value: Any, message: str) -> None:
    """Regression: each of these reached the store and failed there (orjson's TypeError, PostgreSQL's
    DataError), or was stored changed (NaN as null)."""
    for raw in (
        collection("c", leaf("r"), meta=value),
        collection("c", {**leaf("r"), "extra": [{"deep": value}]}),
    ):
        with pytest.raises(InvalidHierarchy, match=message):
            check_document(raw)
    with pytest.raises(InvalidHierarchy, match="the key 'k\\\\x00' holds a NUL"):
        check_document(collection("c", meta={"k\x00": 1}))


@pytest.mark.parametrize("name", ["identifier", "channel", "framework"])
def test_a_root_text_over_255_characters_is_invalid_hierarchy(name: str) -> None:
    """Regression: PostgreSQL refused it (its column is 255 wide) with StringDataRightTruncation."""
    check_document({**collection("c"), name: "x" * 255})
    with pytest.raises(InvalidHierarchy, match=f"the root's {name} .* is 256 characters long, over 255"):
        check_document({**collection("c"), name: "x" * 256})
    check_document(collection("c", leaf("x" * 1000)))  # a leaf's is not stored in a column


def test_the_checks_of_the_hierarchy_fuzzer_see_a_valid_course() -> None:
    course = collection("c", collection("u1", leaf("r1"), leaf("r2", optional=True)), visibility="Default")
    check_hierarchy(course)
    assert compute_relations(parse_hierarchy(course)).leaf_nodes["c"] == {"r1", "r2"}
    assert nesting_depth(course, MAX_NESTING) == 6
