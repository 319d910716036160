"""The hierarchy store's use cases: store a hierarchy, publish it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.domain.events import ContentPublished
from courseinfra.domain.hierarchy import MAX_DEPTH, check_document, parse_hierarchy
from courseinfra.services.unit_of_work import UnitOfWork


class ContentNotFound(DomainError):
    code = "content-not-found"
    kind = ErrorKind.NOT_FOUND


class IdentifierMismatch(DomainError):
    code = "identifier-mismatch"
    kind = ErrorKind.CONFLICT


@dataclass(frozen=True, slots=True)
class StoredVersion:
    identifier: str
    version: int


def put_hierarchy(
    hierarchy: Mapping[str, Any],
    uow: UnitOfWork,
    identifier: str | None = None,
    *,
    max_depth: int = MAX_DEPTH,
) -> StoredVersion:
    """Validate and store ``hierarchy`` as the latest of its root, at most ``max_depth`` levels of
    collections below it (what is stored is read back without a limit: it passed this one).

    Raises :class:`~courseinfra.domain.errors.InvalidHierarchy` for a hierarchy that is not a valid tree
    or not a document the store keeps as given (:func:`~courseinfra.domain.hierarchy.check_document`),
    and :class:`IdentifierMismatch` where ``identifier`` is given and is not the root's.
    """
    check_document(hierarchy)
    flat = parse_hierarchy(hierarchy, max_depth=max_depth)
    if identifier is not None and identifier != flat.root_id:
        raise IdentifierMismatch(f"the path names {identifier} but the hierarchy's root is {flat.root_id}")
    with uow:
        version = uow.hierarchies.put(flat.root_id, str(hierarchy["mimeType"]), hierarchy)
        uow.note("content.put", f"content:{flat.root_id}", version=version, nodes=len(flat.nodes))
        uow.commit()
    return StoredVersion(flat.root_id, version)


def publish(identifier: str, uow: UnitOfWork, at: datetime | None = None) -> ContentPublished:
    """Publish the stored hierarchy of ``identifier``: mark it published and record the post-publish
    event in the outbox, in one transaction."""
    at = at or datetime.now(UTC)
    with uow:
        stored = uow.hierarchies.get(identifier)
        if stored is None:
            raise ContentNotFound(f"no hierarchy is stored for {identifier}")
        uow.hierarchies.mark_published(identifier, at)
        event = ContentPublished(
            identifier=identifier,
            mime_type=stored.mime_type,
            content_type=_text(stored.hierarchy.get("contentType")),
            name=_text(stored.hierarchy.get("name")),
            channel=_text(stored.hierarchy.get("channel")),
            version=stored.version,
            occurred_at=at,
        )
        uow.record(event)
        uow.note("content.publish", f"content:{identifier}", version=stored.version)
        uow.commit(at)
    return event


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
