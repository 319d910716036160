"""Job requests (Sunbird ``BE_JOB_REQUEST`` envelopes) read into typed commands, or a reasoned rejection.

Reading never raises on bad input: it returns a :class:`Rejection` whose ``code`` is stable and whose
``reason`` tells an operator what is wrong, so that the event can be kept and replayed.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from courseinfra.domain.hierarchy import is_collection_mime_type
from courseinfra.domain.progress import ContentUpdate, EnrolmentKey
from courseinfra.domain.quoting import json_text

POST_PUBLISH_ACTIONS = frozenset({"post-publish-process", "relation-cache-update"})


class Outcome(StrEnum):
    PROCESSED = "processed"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event was not processed. ``outcome`` is skipped (nothing to do) or failed (cannot do)."""

    outcome: Outcome
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class RelationCacheRequest:
    """Rebuild the relation cache of the collection ``identifier`` from its stored hierarchy."""

    identifier: str
    action: str


def event_action(event: Mapping[str, Any]) -> str | None:
    edata = event.get("edata")
    if isinstance(edata, Mapping):
        action = edata.get("action")
        if isinstance(action, str):
            return action
    return None


def read_relation_cache_request(event: Mapping[str, Any]) -> RelationCacheRequest | Rejection:
    """Read a post-publish event: ``edata.action`` one of :data:`POST_PUBLISH_ACTIONS`,
    ``edata.identifier`` (or Sunbird's older ``edata.id``) and ``edata.mimeType``."""
    edata = event.get("edata")
    if not isinstance(edata, Mapping):
        return Rejection(Outcome.FAILED, "missing-edata", "the event has no 'edata' object")
    action = edata.get("action")
    if action not in POST_PUBLISH_ACTIONS:
        return Rejection(
            Outcome.SKIPPED,
            "not-post-publish",
            f"edata.action {json_text(action)} is not a post-publish action",
        )
    identifier = edata.get("identifier", edata.get("id"))
    if not isinstance(identifier, str) or not identifier.strip():
        return Rejection(Outcome.FAILED, "missing-identifier", "edata.identifier is missing or empty")
    mime_type = edata.get("mimeType")
    if not is_collection_mime_type(mime_type):
        return Rejection(
            Outcome.SKIPPED,
            "not-a-collection",
            f"{identifier} has mimeType {json_text(mime_type)}; only collections have relations to cache",
        )
    return RelationCacheRequest(identifier=identifier.strip(), action=str(action))


ENROLMENT_UPDATE_ACTION = "batch-enrolment-update"


@dataclass(frozen=True, slots=True)
class EnrolmentUpdateRequest:
    """Content status updates of one enrolment (``edata.userId``, ``courseId``, ``batchId``, ``contents``)."""

    key: EnrolmentKey
    contents: tuple[ContentUpdate, ...]


def _text_field(edata: Mapping[str, Any], name: str) -> str | None:
    value = edata.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def read_enrolment_update(event: Mapping[str, Any]) -> EnrolmentUpdateRequest | Rejection:
    """Read a ``batch-enrolment-update`` request; statuses must be whole numbers 0, 1 or 2."""
    edata = event.get("edata")
    if not isinstance(edata, Mapping):
        return Rejection(Outcome.FAILED, "missing-edata", "the event has no 'edata' object")
    if edata.get("action") != ENROLMENT_UPDATE_ACTION:
        return Rejection(
            Outcome.SKIPPED,
            "not-enrolment-update",
            f"edata.action {json_text(edata.get('action'))} is not {ENROLMENT_UPDATE_ACTION}",
        )
    ids = {name: _text_field(edata, name) for name in ("userId", "courseId", "batchId")}
    missing = [name for name, value in ids.items() if value is None]
    if missing:
        return Rejection(Outcome.FAILED, "missing-field", f"edata.{missing[0]} is missing or empty")
    contents = edata.get("contents")
    if not isinstance(contents, list) or not contents:
        return Rejection(Outcome.FAILED, "missing-contents", "edata.contents must be a non-empty list")
    updates = []
    for index, item in enumerate(contents):
        content_id = _text_field(item, "contentId") if isinstance(item, Mapping) else None
        if content_id is None:
            return Rejection(Outcome.FAILED, "invalid-contents", f"edata.contents[{index}] has no contentId")
        status = item.get("status")
        if type(status) is not int or not 0 <= status <= 2:
            return Rejection(
                Outcome.FAILED,
                "invalid-status",
                f"edata.contents[{index}] ({content_id}): status {json_text(status)} is not 0, 1 or 2",
            )
        updates.append(ContentUpdate(content_id, status))
    key = EnrolmentKey(str(ids["userId"]), str(ids["courseId"]), str(ids["batchId"]))
    return EnrolmentUpdateRequest(key, tuple(updates))


def partition_of(event: Mapping[str, Any], partitions: int) -> int:
    """The partition (``0 .. partitions - 1``) an event belongs to: every event of one enrolment
    (``edata.userId``, ``courseId``, ``batchId``, trimmed) is in the same one, whatever the process
    computing it, so that one worker per partition applies an enrolment's events in their order. An event
    without a complete enrolment key is in partition 0."""
    edata = event.get("edata")
    if partitions <= 1 or not isinstance(edata, Mapping):
        return 0
    ids = [value for name in ("userId", "courseId", "batchId") if (value := _text_field(edata, name))]
    if len(ids) < 3:
        return 0
    # crc32, not hash(): str hashes differ from one process to another.
    return zlib.crc32("\x1f".join(ids).encode()) % partitions


def root_partition_of(event: Mapping[str, Any], partitions: int) -> int:
    """The partition (``0 .. partitions - 1``) of a post-publish event: every event of one root
    (``edata.identifier``, or Sunbird's older ``edata.id``, trimmed) is in the same one, so that one
    worker applies a root's publications in their order; any other event is in partition 0."""
    edata = event.get("edata")
    if partitions <= 1 or not isinstance(edata, Mapping) or edata.get("action") not in POST_PUBLISH_ACTIONS:
        return 0
    root = edata.get("identifier", edata.get("id"))
    if not isinstance(root, str) or not root.strip():
        return 0
    return zlib.crc32(root.strip().encode()) % partitions
