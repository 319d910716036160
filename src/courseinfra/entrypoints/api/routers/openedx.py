"""Open edX events posted (the webhook of ADR 0022, for installations without an event bus): each goes
through ingest as the ``openedx-events`` job, as ``courseinfra openedx consume`` passes the bus's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from courseinfra.domain.access import Permission
from courseinfra.entrypoints.api.deps import AUTH, INVALID, AppDep, guard, raw_body
from courseinfra.entrypoints.api.event_bodies import json_lines
from courseinfra.entrypoints.schemas.events import IngestOut
from courseinfra.services.events.ingest import ingest
from courseinfra.services.openedx.intake import openedx_only

router = APIRouter(
    tags=["openedx"],
    dependencies=[guard(read=Permission.READ, write=Permission.INGEST)],
    responses=AUTH,
)

#: Where the events posted here come from, in failed events (``openedx:webhook:<element>``).
SOURCE = "openedx:webhook"

#: A genuine event: the cohort membership change edx-event-bus-redis put on the bus for openedx-events'
#: COHORT_MEMBERSHIP_CHANGED signal (shared/conformance/openedx-event-bus, cohort-blue), its envelope's
#: fields as text and its data as openedx-events' deserializer reads it (tests check that the two agree),
#: but for the course's ``end``, null, which the OpenAPI document cannot show (it leaves nulls out):
#: a missing optional field reads as null.
COHORT_EVENT_EXAMPLE: dict[str, Any] = {
    "type": "org.openedx.learning.cohort_membership.changed.v1",
    "id": "cafb6fee-edc2-11f1-a77e-02fc00000001",
    "source": "openedx/lms/web",
    "time": "2026-09-03T12:00:00+00:00",
    "minorversion": "0",
    "sourcehost": "lms.example.org",
    "sourcelib": "10.5.0",
    "data": {
        "cohort": {
            "user": {
                "id": 7,
                "is_active": True,
                "pii": {"username": "learner-1", "email": "learner-1@example.org", "name": "Learner-1"},
            },
            "course": {
                "course_key": "course-v1:DemoX+CI101+2026",
                "display_name": "Demo course",
                "start": "2026-09-01T00:00:00+00:00",
            },
            "name": "Blue",
        }
    },
}

_FIELD = "An envelope field (OEP-41, as the Redis event bus writes it), as text."

#: One envelope. Its fields are described, not typed: an element that is not a readable Open edX event
#: is kept in failed events with its reason, never refused with the whole body.
ENVELOPE: dict[str, Any] = {
    "type": "object",
    "title": "OpenedxEventEnvelope",
    "description": "An Open edX event: its envelope's fields and the signal's data. Other fields "
    "(CloudEvents' specversion, datacontenttype, ...) are ignored.",
    "properties": {
        "type": {
            "description": "The Open edX event type, org.openedx.<domain>.<subject>.<action>.v<N>; "
            "another is kept as failed (not-an-openedx-event)."
        },
        "id": {"description": "The event's UUID: an id already applied is skipped (already-applied)."},
        "source": {"description": f"{_FIELD} The logical source, openedx/lms/web."},
        "time": {"description": f"{_FIELD} When it happened, ISO 8601 (UTC without an offset)."},
        "minorversion": {"description": f"{_FIELD} A whole number: the event type's minor version."},
        "sourcehost": {"description": f"{_FIELD} The host that sent it."},
        "sourcelib": {"description": f"{_FIELD} The openedx-events version that sent it, 10.5.0."},
        "data": {
            "description": 'The signal\'s data as openedx-events names it ({"cohort": {...}}, '
            '{"enrollment": {...}}, {"tracking_log": {...}}), datetimes as ISO 8601 text.'
        },
    },
}

#: An element of an array: any JSON value (one that is not an object is kept as failed, not-an-object).
ELEMENT = {key: value for key, value in ENVELOPE.items() if key != "type"}

OPENEDX_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One Open edX event, or a JSON array of them, read as JSON whatever the content "
        "type. A body that is not JSON, or neither an object nor an array, is 422 invalid-body; an "
        "element that cannot be read is kept as a failed event with its reason and the others go on.",
        "content": {
            media_type: {
                "schema": {"anyOf": [ENVELOPE, {"type": "array", "items": ELEMENT}]},
                "example": example,
            }
            for media_type, example in (
                ("application/json", COHORT_EVENT_EXAMPLE),
                ("application/cloudevents+json", COHORT_EVENT_EXAMPLE),
                ("application/cloudevents-batch+json", [COHORT_EVENT_EXAMPLE]),
            )
        },
    }
}


@router.post("/v1/openedx/events", response_model=IngestOut, responses=INVALID, openapi_extra=OPENEDX_BODY)
def ingest_openedx_events(app: AppDep, body: Annotated[bytes, Depends(raw_body)]) -> IngestOut:
    """Apply Open edX events to the user groups linked to the legacy groups they touch, each finished
    before this returns, as ``courseinfra openedx consume`` applies the bus's: an event whose ``id``
    was applied before is skipped (``already-applied``); one that cannot be read or applied, and
    anything that is not an Open edX event (``not-an-openedx-event``: never routed to another job), is
    kept in ``/v1/failed-events`` with its reason.

    The answer is 200 even when events were not applied: they are listed in ``rejected``.
    """
    lines = json_lines(body, app.settings.ingest_max_line_bytes)
    report = ingest(
        lines, SOURCE, openedx_only(app.router), app.uow_factory, chunk_size=app.settings.ingest_chunk_size
    )
    return IngestOut.of(report)
