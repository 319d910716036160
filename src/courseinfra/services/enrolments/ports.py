"""The ports of enrolments: batches, enrolments and per-unit activity."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from courseinfra.domain.enrolments import CourseBatch, Enrolment
from courseinfra.domain.progress import (
    EnrolmentKey,
    EnrolmentState,
    UnitMetrics,
)

if TYPE_CHECKING:
    pass


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """A batch's enrolments counted by the store, never read one by one.

    ``enrolled``, ``started`` (status 1 or 2), ``completed`` (status 2) and ``histogram`` count the
    active enrolments (the report's participants); ``histogram`` has one count per bucket of
    ``domain.reports.HISTOGRAM_BUCKETS`` (progress clamped to 0-100, ten points a bucket, then 100).
    ``left``: the enrolments no longer active. ``completions``: the enrolments, active or not, that
    completed each day (UTC) there was one, by day."""

    enrolled: int
    started: int
    completed: int
    left: int
    histogram: tuple[int, ...]
    completions: tuple[tuple[date, int], ...]


class BatchStore(abc.ABC):
    @abc.abstractmethod
    def add(self, batch: CourseBatch) -> None:
        """Store a new batch; raises :class:`AlreadyExists` if its id is taken."""

    @abc.abstractmethod
    def get(self, batch_id: str) -> CourseBatch | None: ...

    @abc.abstractmethod
    def every(self) -> list[CourseBatch]:
        """Every batch, by batch id (a report run gives each one not covered its reason)."""

    @abc.abstractmethod
    def list(
        self, *, course_id: str | None = None, after: str = "", limit: int = 100
    ) -> list[CourseBatch]: ...


class EnrolmentStore(abc.ABC):
    @abc.abstractmethod
    def add(self, enrolment: Enrolment) -> bool:
        """Enrol; return False (and change nothing) if the enrolment exists."""

    @abc.abstractmethod
    def set_active(self, key: EnrolmentKey, active: bool, at: datetime, *, mode: str | None = None) -> bool:
        """Set ``active`` (and the mode, when given); return False if there is no such enrolment."""

    @abc.abstractmethod
    def get_many(
        self, keys: Sequence[EnrolmentKey], *, for_update: bool = False
    ) -> dict[EnrolmentKey, Enrolment]:
        """The enrolments that exist among ``keys``, in one read. ``for_update``: the caller will write
        them back; no other unit of work changes them until this one ends (their rows are locked in key
        order, so that two writers of overlapping keys never deadlock)."""

    @abc.abstractmethod
    def save_progress(self, states: Sequence[EnrolmentState]) -> None:
        """Write the aggregator's columns of existing enrolments, in one bulk write."""

    @abc.abstractmethod
    def list_for_user(self, user_id: str) -> list[Enrolment]: ...

    @abc.abstractmethod
    def batch_progress(self, batch_id: str) -> BatchProgress:
        """The batch's enrolments counted (zeros for a batch without any), aggregated by the store in
        one pass over the batch's rows."""

    @abc.abstractmethod
    def list_for_batch(
        self, batch_id: str, *, after_user: str = "", limit: int = 1000, for_update: bool = False
    ) -> list[Enrolment]:
        """A page of a batch's enrolments in user order; ``for_update`` as in :meth:`get_many`."""


class ActivityStore(abc.ABC):
    @abc.abstractmethod
    def upsert(self, metrics: Sequence[UnitMetrics], at: datetime) -> None: ...

    @abc.abstractmethod
    def for_user(self, user_id: str, context_id: str) -> list[UnitMetrics]: ...
