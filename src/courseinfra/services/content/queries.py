"""What entry points read of the stored content."""

from __future__ import annotations

from courseinfra.services.content.handlers import ContentNotFound
from courseinfra.services.content.ports import ContentSummary, StoredHierarchy
from courseinfra.services.unit_of_work import UowFactory


def get_hierarchy(identifier: str, uow_factory: UowFactory) -> StoredHierarchy:
    """The stored hierarchy of a root; :class:`ContentNotFound` if none is stored."""
    with uow_factory().reading() as uow:
        stored = uow.hierarchies.get(identifier)
    if stored is None:
        raise ContentNotFound(f"no hierarchy is stored for {identifier}")
    return stored


def published_courses(uow_factory: UowFactory, *, after: str = "", limit: int = 50) -> list[ContentSummary]:
    """A page of the published roots above ``after``, in identifier order, without their hierarchies."""
    with uow_factory().reading() as uow:
        ids = uow.hierarchies.published_ids(after=after, limit=limit)
        summaries = uow.hierarchies.summaries(ids)
    return [summaries[identifier] for identifier in ids if identifier in summaries]


def course_summary(identifier: str, uow_factory: UowFactory) -> ContentSummary | None:
    """What is stored of a root without its hierarchy (version, publication, organisation, framework);
    None if no hierarchy is stored for it."""
    with uow_factory().reading() as uow:
        return uow.hierarchies.summaries([identifier]).get(identifier)
