"""The port of the trail: the stored changes."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import datetime

from courseinfra.domain.trail import Actor, Change, ChangeRecord


class ChangeTrail(abc.ABC):
    """Changes in the order they were written; never changed once written."""

    @abc.abstractmethod
    def add(self, changes: Sequence[Change], actor: Actor, at: datetime) -> None: ...

    @abc.abstractmethod
    def list(
        self,
        *,
        after_id: int = 0,
        limit: int = 100,
        target: str | None = None,
        subject: str | None = None,
        action_prefix: str | None = None,
    ) -> list[ChangeRecord]:
        """Changes with ids above ``after_id``, oldest first; ``target``, ``subject``: only theirs;
        ``action_prefix``: only actions starting with it (``group.`` for every group change)."""
