"""Open edX events as the intake's JSON lines: a bus entry written as one (so that it passes through
``ingest``, failed events and replays like any event), and a webhook's JSON read back (ADR 0022).

A line is the envelope's metadata fields as text (``type``, ``id``, ``source``, ``time``,
``minorversion``, ``sourcehost``, ``sourcelib``) and either ``event_data_base64`` (a bus entry's Avro
bytes, as written: a kept entry replays exactly) or ``data`` (the signal's data as JSON, datetimes as
ISO 8601 text: what a webhook posts). ``bus`` names the stream and entry it was read from.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Mapping
from typing import Any

from courseinfra.domain.job_requests import Outcome, Rejection
from courseinfra.domain.openedx_events import METADATA_FIELDS, OpenedxMessage, read_message, read_metadata
from courseinfra.services.openedx.intake import MessageReader
from courseinfra.services.openedx.ports import BusEntry

AVRO_FIELD = "event_data_base64"
#: The entry field holding the Avro bytes (``wire.EVENT_DATA_FIELD``; not imported from there, so that
#: building the intake loads no Avro library until an event comes).
EVENT_DATA_FIELD = "event_data"


def entry_line(entry: BusEntry) -> dict[str, Any]:
    """A bus entry as an intake line: its text fields, its Avro bytes in base64, where it came from."""
    line: dict[str, Any] = {}
    for name, value in entry.fields.items():
        if name == EVENT_DATA_FIELD:
            line[AVRO_FIELD] = base64.b64encode(value).decode()
        else:
            line[name] = value.decode("utf-8", errors="replace")
    line["bus"] = {"stream": entry.stream, "entry": entry.entry_id}
    return line


def _invalid(reason: str) -> Rejection:
    return Rejection(Outcome.FAILED, "invalid-field", reason)


class EnvelopeReader(MessageReader):
    """Reads an intake line (a bus entry's, or a webhook's) into an Open edX message, or a rejection."""

    def read(self, line: Mapping[str, Any]) -> OpenedxMessage | Rejection:
        from courseinfra.adapters.openedx_bus.wire import decode_entry, with_datetimes

        if AVRO_FIELD in line:
            encoded = line[AVRO_FIELD]
            if not isinstance(encoded, str):
                return _invalid(f"{AVRO_FIELD} is not base64 text")
            try:
                avro = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                return _invalid(f"{AVRO_FIELD} is not base64 text")
            fields: dict[str, bytes | str] = {
                name: str(line[name]) for name in METADATA_FIELDS if line.get(name) is not None
            }
            fields[EVENT_DATA_FIELD] = avro
            return decode_entry(fields)
        text = {name: None if line.get(name) is None else str(line[name]) for name in METADATA_FIELDS}
        metadata = read_metadata(text)
        if isinstance(metadata, Rejection):
            return metadata
        data = line.get("data")
        if not isinstance(data, dict):
            return Rejection(
                Outcome.FAILED, "missing-field", "data: the signal's data (a JSON object) is missing"
            )
        # Read into a copy: the line is kept verbatim should the event fail.
        parsed = with_datetimes(metadata.type, copy.deepcopy(data))
        if isinstance(parsed, Rejection):
            return parsed
        return read_message(metadata, parsed)
