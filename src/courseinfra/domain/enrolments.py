"""Course batches and enrolments as the enrolment tables keep them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from courseinfra.domain.progress import (
    EnrolmentKey,
    EnrolmentState,
)


@dataclass(frozen=True, slots=True)
class CourseBatch:
    batch_id: str
    course_id: str
    name: str
    created_at: datetime
    description: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    enrollment_end_date: date | None = None
    enrollment_type: str = "open"
    status: int = 1
    created_for: tuple[str, ...] = ()
    mentors: tuple[str, ...] = ()
    created_by: str | None = None


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A row of ``user_enrolments``: the aggregator's state plus what enrolment itself records."""

    state: EnrolmentState
    active: bool
    enrolled_date: datetime
    added_by: str | None = None
    certificates: tuple[Mapping[str, Any], ...] = ()
    mode: str = "audit"

    @property
    def key(self) -> EnrolmentKey:
        return self.state.key
