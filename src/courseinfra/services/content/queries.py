"""What entry points read of the stored content."""

from __future__ import annotations

from courseinfra.services.content.handlers import ContentNotFound
from courseinfra.services.content.ports import StoredHierarchy
from courseinfra.services.unit_of_work import UowFactory


def get_hierarchy(identifier: str, uow_factory: UowFactory) -> StoredHierarchy:
    """The stored hierarchy of a root; :class:`ContentNotFound` if none is stored."""
    with uow_factory().reading() as uow:
        stored = uow.hierarchies.get(identifier)
    if stored is None:
        raise ContentNotFound(f"no hierarchy is stored for {identifier}")
    return stored
