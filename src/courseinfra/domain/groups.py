"""User groups: a named set of users in a scope, defined by criteria (see :mod:`.criteria`) and manual
overrides, whose membership is computed, stored and changed only by difference.

A group's definition changes under optimistic concurrency: every change bumps ``version``, and a writer
that read an older version is refused (:class:`VersionConflict`), which the API exposes as ETag /
If-Match. A frozen group keeps its members: refresh never changes it. A disabled group is not refreshed
by events or schedules either, but can be refreshed on demand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from courseinfra.domain.criteria import Node, Scope
from courseinfra.domain.errors import DomainError, ErrorKind

NAME_MAX = 255
GROUP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class InvalidGroup(DomainError):
    code = "invalid-group"


class VersionConflict(DomainError):
    """The group changed since the writer read it."""

    code = "version-conflict"
    kind = ErrorKind.STALE


class GroupFrozen(DomainError):
    code = "group-frozen"
    kind = ErrorKind.CONFLICT


@dataclass(frozen=True, slots=True)
class UserGroup:
    """A group's definition and its membership's summary (``member_count``, ``last_refreshed_at``)."""

    group_id: str
    name: str
    scope: Scope
    created_at: datetime
    updated_at: datetime
    description: str = ""
    enabled: bool = True
    frozen: bool = False
    criteria: Node | None = None
    version: int = 1
    member_count: int = 0
    last_refreshed_at: datetime | None = None

    def __post_init__(self) -> None:
        if not GROUP_ID.match(self.group_id):
            raise InvalidGroup(
                f"group id {self.group_id!r}: 1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit"
            )
        if not self.name.strip() or len(self.name) > NAME_MAX:
            raise InvalidGroup(f"group name: 1 to {NAME_MAX} characters")

    def check_version(self, expected: int | None) -> None:
        """Refuse a change based on another version than the stored one (None: no check)."""
        if expected is not None and expected != self.version:
            raise VersionConflict(
                f"group {self.group_id} is at version {self.version}, the change was made on version {expected}"
            )

    def changed(self, at: datetime, **fields: Any) -> UserGroup:
        """The group with ``fields`` changed, its version bumped and ``updated_at`` set."""
        return replace(self, **fields, version=self.version + 1, updated_at=at)

    @property
    def etag(self) -> str:
        return f'"{self.group_id}.{self.version}"'
