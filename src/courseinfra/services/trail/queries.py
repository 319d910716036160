"""What administrators read of the trail."""

from __future__ import annotations

from courseinfra.domain.trail import ChangeRecord
from courseinfra.services.unit_of_work import UowFactory


def list_changes(
    uow_factory: UowFactory,
    *,
    after_id: int = 0,
    limit: int = 100,
    target: str | None = None,
    subject: str | None = None,
    action_prefix: str | None = None,
) -> list[ChangeRecord]:
    with uow_factory().reading() as uow:
        return uow.trail.list(
            after_id=after_id, limit=limit, target=target, subject=subject, action_prefix=action_prefix
        )
