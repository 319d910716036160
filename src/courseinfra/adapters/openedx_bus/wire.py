"""The Open edX event bus's wire format, read into this project's typed events and written back.

edx-event-bus-redis writes one Redis stream per topic (``<prefix>-<topic>``); each entry has the
envelope's text fields (``type``, ``id``, ``source``, ``time``, ``minorversion``, ``sourcehost``,
``sourcelib``) and ``event_data``: the signal's data as schemaless Avro, written with the signal's schema
(:mod:`.schemas`), datetimes as ISO 8601 text. edx-event-bus-kafka carries the same envelope as message
headers (``ce_type``, ``ce_id``, ...) and the same bytes as the message value.

Decoding never raises on bad input: an entry that cannot be read is a
:class:`~courseinfra.domain.job_requests.Rejection` with a stable code and a reason naming the field,
so that it can be kept and replayed (ADR 0005). The codes, beside the domain's (``missing-field``,
``invalid-field``, ``event-type-not-read``, ``tracking-log-not-read``, see
:mod:`courseinfra.domain.openedx_events`): ``unsupported-minor-version`` (no schema for that minor
version: schemaless bytes cannot be read with another's) and ``undecodable-event-data`` (not a record of
the signal's schema: garbage, truncated, or bytes left over).
"""

from __future__ import annotations

import io
import socket
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import fastavro
from fastavro.types import Schema as FastavroSchema

from courseinfra.adapters.openedx_bus.schemas import DATETIME_PATHS, MINOR_VERSIONS, SCHEMAS
from courseinfra.domain.job_requests import Outcome, Rejection
from courseinfra.domain.openedx_events import (
    EVENT_CLASSES,
    METADATA_FIELDS,
    EnvelopeMetadata,
    OpenedxEvent,
    OpenedxMessage,
    read_message,
    read_metadata,
    signal_data,
)

#: A stream entry's fields as a client gives them: keys and values as bytes (redis-py) or text.
EntryFields = Mapping[str, bytes | str] | Mapping[bytes, bytes | str] | Mapping[bytes | str, bytes | str]

#: The entry field that holds the Avro bytes.
EVENT_DATA_FIELD = "event_data"

#: The Kafka bus's header for each envelope field (CloudEvents' ``ce_`` ones, and two of Open edX's own).
KAFKA_HEADERS = {
    "id": "ce_id",
    "type": "ce_type",
    "source": "ce_source",
    "time": "ce_time",
    "minorversion": "ce_minorversion",
    "sourcehost": "sourcehost",
    "sourcelib": "sourcelib",
}

#: What openedx-events 10.5 writes as ``sourcelib`` (its version); :func:`envelope_for`'s default.
SOURCELIB = (10, 5, 0)

_PARSED: dict[str, FastavroSchema] = {
    event_type: fastavro.parse_schema(schema) for event_type, schema in SCHEMAS.items()
}


def _failed(code: str, reason: str) -> Rejection:
    return Rejection(Outcome.FAILED, code, reason)


def _text_fields(fields: EntryFields) -> dict[str, bytes | str]:
    # redis-py answers bytes keys (str with decode_responses): both are read alike.
    return {
        (key.decode("utf-8", "replace") if isinstance(key, bytes) else key): value
        for key, value in fields.items()
    }


def decode_event_data(event_type: str, event_data: bytes) -> dict[str, Any] | Rejection:
    """The decoded signal data of ``event_data`` written with the schema of ``event_type`` (its minor
    version 0), as openedx-events' deserializer gives it but for course keys, left as text: datetimes are
    turned back into datetimes. Bytes that are not exactly one record of that schema are
    ``undecodable-event-data``; a datetime's text that is not ISO 8601 is ``invalid-field``."""
    schema = _PARSED.get(event_type)
    if schema is None:
        return Rejection(
            Outcome.SKIPPED, "event-type-not-read", f"event type {event_type!r} is not one this project reads"
        )
    stream = io.BytesIO(event_data)
    try:
        record = fastavro.schemaless_reader(stream, schema, None)
    except Exception as error:
        # fastavro raises whatever its reading met on bytes that are not this schema's record (EOFError,
        # UnicodeDecodeError, IndexError for a union branch, ValueError, MemoryError for a huge length...):
        # all of them mean the same thing here.
        return _failed(
            "undecodable-event-data",
            f"event_data ({len(event_data)} bytes) is not a record of the {event_type} schema: "
            f"{type(error).__name__}: {str(error)[:200]}",
        )
    left = len(event_data) - stream.tell()
    if left:
        return _failed(
            "undecodable-event-data",
            f"event_data has {left} bytes left after a record of the {event_type} schema "
            "(written with another schema, or corrupt)",
        )
    if not isinstance(record, dict):
        return _failed("undecodable-event-data", f"event_data is not a record of the {event_type} schema")
    return with_datetimes(event_type, record)


def with_datetimes(event_type: str, data: dict[str, Any]) -> dict[str, Any] | Rejection:
    """``data`` (the signal data of ``event_type`` with its datetimes as ISO 8601 text, as Avro or JSON
    carry them: a webhook's body, say) with those datetimes read as datetimes, in place; a text that is not
    ISO 8601 is ``invalid-field`` naming it. A type not read, or a date null or absent, is left as it is
    (reading the event says what is missing)."""
    cls = EVENT_CLASSES.get(event_type)
    if cls is None:
        return data
    for path in DATETIME_PATHS[event_type]:
        problem = _parse_datetime_at(data, (cls.data_key, *path))
        if problem is not None:
            return problem
    return data


def _parse_datetime_at(record: dict[str, Any], path: tuple[str, ...]) -> Rejection | None:
    parent: Any = record
    for name in path[:-1]:
        parent = parent.get(name) if isinstance(parent, dict) else None
    if not isinstance(parent, dict) or not isinstance(parent.get(path[-1]), str):
        return None  # null (an optional date), or absent: the domain's reading says what it needs
    text = parent[path[-1]]
    try:
        parent[path[-1]] = datetime.fromisoformat(text)
    except ValueError:
        return _failed("invalid-field", f"{'.'.join(path)}: {text[:80]!r} is not an ISO 8601 date-time")
    return None


def decode_entry(fields: EntryFields) -> OpenedxMessage | Rejection:
    """Read one stream entry as edx-event-bus-redis writes it (keys and values as bytes or text;
    ``event_data`` must be the bytes as written, never text).

    The envelope is read first (every field required: ``missing-field``/``invalid-field`` naming
    ``metadata.<field>``), then its type (``event-type-not-read``, skipped) and minor version
    (``unsupported-minor-version``), then ``event_data`` (``undecodable-event-data``), then the signal's
    fields (:func:`~courseinfra.domain.openedx_events.read_event`)."""
    named = _text_fields(fields)
    text: dict[str, str | None] = {}
    for name in METADATA_FIELDS:
        value = named.get(name)
        if value is None:
            continue
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                return _failed("invalid-field", f"metadata.{name}: {value[:40]!r} is not UTF-8 text")
        text[name] = value
    metadata = read_metadata(text)
    if isinstance(metadata, Rejection):
        return metadata
    if metadata.type not in SCHEMAS:
        return Rejection(
            Outcome.SKIPPED,
            "event-type-not-read",
            f"event type {metadata.type!r} is not one this project reads",
        )
    readable = MINOR_VERSIONS[metadata.type]
    if metadata.minorversion != readable:
        return _failed(
            "unsupported-minor-version",
            f"{metadata.type} minor version {metadata.minorversion} cannot be read: its Avro schema is not "
            f"known here (only minor version {readable}'s)",
        )
    event_data = named.get(EVENT_DATA_FIELD)
    if event_data is None:
        return _failed("missing-field", f"{EVENT_DATA_FIELD} is missing")
    if not isinstance(event_data, bytes):
        return _failed(
            "invalid-field",
            f"{EVENT_DATA_FIELD} arrived as text, not bytes: Avro bytes do not survive decoding as text "
            "(read the stream without decode_responses)",
        )
    data = decode_event_data(metadata.type, event_data)
    if isinstance(data, Rejection):
        return data
    return read_message(metadata, data)


def _iso(value: Any) -> Any:
    # openedx-events' DatetimeAvroSerializer: a datetime is written as its isoformat().
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _iso(item) for key, item in value.items()}
    return value


def encode_event_data(event: OpenedxEvent) -> bytes:
    """``event``'s signal data as schemaless Avro, as openedx-events writes it. Raises ``ValueError``
    (fastavro's) for an event whose values do not fit the schema (a user id beyond 64 bits)."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _PARSED[event.event_type], _iso(signal_data(event)))
    return out.getvalue()


def encode_entry(message: OpenedxMessage) -> dict[str, bytes]:
    """The stream entry that edx-event-bus-redis writes for ``message`` (the inverse of
    :func:`decode_entry`). Raises ``ValueError`` when the envelope's type is not the event's."""
    if message.metadata.type != message.event.event_type:
        raise ValueError(
            f"the envelope says {message.metadata.type}, the event is {message.event.event_type}"
        )
    entry = {name: value.encode() for name, value in message.metadata.fields().items()}
    entry[EVENT_DATA_FIELD] = encode_event_data(message.event)
    return entry


def envelope_for(
    event: OpenedxEvent,
    *,
    id: str | None = None,
    time: datetime | None = None,
    source: str = "openedx/lms/web",
    sourcehost: str | None = None,
    sourcelib: tuple[int, ...] = SOURCELIB,
) -> EnvelopeMetadata:
    """A new envelope for ``event``, as an Open edX producer makes one: a fresh UUID1 id, the time now
    (UTC), this host, minor version 0 (for the fake Open edX and tests)."""
    return EnvelopeMetadata(
        id=id or str(uuid.uuid1()),
        type=event.event_type,
        source=source,
        time=time or datetime.now(UTC),
        minorversion=MINOR_VERSIONS[event.event_type],
        sourcehost=sourcehost or socket.gethostname(),
        sourcelib=sourcelib,
    )


def from_kafka_headers(
    headers: Iterable[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None,
    value: bytes | None,
) -> OpenedxMessage | Rejection:
    """Read a message of edx-event-bus-kafka: its headers (as confluent-kafka gives them, a list of
    ``(key, value)``, or a mapping) and its value (the Avro bytes). A header given more than once is
    ``invalid-field``, as the Kafka bus refuses it; then as :func:`decode_entry`."""
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
    by_header = {header: name for name, header in KAFKA_HEADERS.items()}
    fields: dict[bytes | str, bytes | str] = {}
    for key, item in pairs:
        name = by_header.get(key)
        if name is None or item is None:
            continue
        if name in fields:
            return _failed("invalid-field", f"metadata.{name}: the header {key} is given more than once")
        fields[name] = item
    if value is not None:
        fields[EVENT_DATA_FIELD] = value
    return decode_entry(fields)


def kafka_headers(metadata: EnvelopeMetadata) -> list[tuple[str, bytes]]:
    """The headers edx-event-bus-kafka writes for ``metadata`` (with the CloudEvents spec version and the
    content type it adds)."""
    headers = [(KAFKA_HEADERS[name], text.encode()) for name, text in metadata.fields().items()]
    return [
        ("ce_specversion", b"1.0"),
        ("content-type", b"application/avro"),
        ("ce_datacontenttype", b"application/avro"),
        *headers,
    ]
