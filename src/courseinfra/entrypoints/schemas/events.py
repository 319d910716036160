"""What event ingest answers, and the entries of the event streams."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from courseinfra.services.events.ports import StreamEntry


class RejectedOut(BaseModel):
    source: str
    job: str
    outcome: str
    code: str
    reason: str


class IngestOut(BaseModel):
    jobs: dict[str, dict[str, int]]
    rejected: list[RejectedOut]


class StreamEntryOut(BaseModel):
    position: str = Field(
        description="The entry's position: pass the last one as ``after`` for the next page."
    )
    id: int = Field(description="The message id (outbox id; AUDIT entry id): consumers drop repeats by it.")
    key: str = Field(description="The event's key (its partition key).")
    payload: dict[str, Any] = Field(description="The event's fields (see its contract).")


def stream_entry_json(entry: StreamEntry) -> dict[str, Any]:
    message = entry.message
    return {"position": entry.position, "id": message.id, "key": message.key, "payload": message.payload}
