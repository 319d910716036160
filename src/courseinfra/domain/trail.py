"""The trail of who changed what: each change to groups, members, users, content, learning records,
replays and tokens, with who made it, when, through what, and from where.

A change is noted by the use case that makes it, in its own unit of work: the trail row commits with
the change or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a token's id or a JWT's user (``subject``), its role, the entry point (``api``,
    ``cli``, ``worker``) and where the request came from (the client's address, or the machine a
    command ran on)."""

    subject: str
    role: str
    via: str
    origin: str | None = None


#: What acts when no entry point said who: a worker, a test, a job.
SYSTEM = Actor("system", "admin", "worker")


@dataclass(frozen=True, slots=True)
class Change:
    """What changed: an action (``group.update``, ``users.import``) on a target (``group:g1``),
    with what a reader needs to know of it (the fields changed, the counts)."""

    action: str
    target: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    change_id: int
    at: datetime
    actor: Actor
    change: Change
