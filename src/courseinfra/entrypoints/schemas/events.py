"""What event ingest answers, and the entries of the event streams."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, Field

from courseinfra.services.events.ingest import IngestReport, Rejected
from courseinfra.services.events.ports import StreamEntry


class RejectedOut(BaseModel):
    """An event not processed (kept, with its reason, for a replay)."""

    source: str = Field(description="Where the event came from: the file and line, or api and the line.")
    job: str
    outcome: str = Field(description="failed or skipped.")
    code: str
    reason: str

    @classmethod
    def of(cls, rejected: Rejected) -> Self:
        return cls(
            source=rejected.source,
            job=rejected.job,
            outcome=rejected.outcome.value,
            code=rejected.code,
            reason=rejected.reason,
        )


class IngestOut(BaseModel):
    """What one ingest did: counters per job (this run only) and every event it did not process."""

    jobs: dict[str, dict[str, int]]
    rejected: list[RejectedOut]

    @classmethod
    def of(cls, report: IngestReport) -> Self:
        return cls(
            jobs={job: dict(counters.counts) for job, counters in sorted(report.counters.items())},
            rejected=[RejectedOut.of(rejected) for rejected in report.rejected],
        )


class StreamEntryOut(BaseModel):
    position: str = Field(
        description="The entry's position: pass the last one as ``after`` for the next page."
    )
    id: int = Field(description="The message id (outbox id; AUDIT entry id): consumers drop repeats by it.")
    key: str = Field(description="The event's key (its partition key).")
    payload: dict[str, Any] = Field(description="The event's fields (see its contract).")

    @classmethod
    def of(cls, entry: StreamEntry) -> Self:
        message = entry.message
        return cls(position=entry.position, id=message.id, key=message.key, payload=message.payload)
