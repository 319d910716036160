"""The ports of course reports: the learners' rows, the runs and the archive of their files."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from courseinfra.domain.reports import LearnerRow, ReportRun


class ReportReader(abc.ABC):
    """The rows of a batch's progress report, read in pages so that a batch never sits in memory."""

    @abc.abstractmethod
    def learners(
        self,
        batch_id: str,
        unit_ids: Sequence[str],
        *,
        after_user: str = "",
        limit: int = 1000,
        before: datetime | None = None,
    ) -> list[LearnerRow]:
        """The active enrolments of ``batch_id`` with a user id above ``after_user``, by user id, each with
        the directory's name and email and its progress in each of ``unit_ids`` (0 where never touched).

        With ``before``, the enrolments that were participants just before that moment instead (enrolled
        before it, and active or left at or after it), each with its :class:`ProgressHistory` and no unit
        progress: the caller rebuilds the row as of then (``domain.reports.row_as_of``)."""


class ReportRuns(abc.ABC):
    """Report runs, so that any process (the CLI, the API) sees a run's status."""

    @abc.abstractmethod
    def add(self, run: ReportRun) -> None: ...

    @abc.abstractmethod
    def save(self, run: ReportRun) -> None:
        """Replace the stored run of the same id with ``run``."""

    @abc.abstractmethod
    def get(self, run_id: str) -> ReportRun | None: ...

    @abc.abstractmethod
    def list(self, *, limit: int = 50) -> list[ReportRun]:
        """The latest runs first."""

    @abc.abstractmethod
    def count_by_status(self) -> dict[str, int]:
        """How many runs are kept, by status (statuses without any are absent)."""


class ReportFile(abc.ABC):
    """A report file being written; nothing of it is visible before its run is published."""

    @abc.abstractmethod
    def write_row(self, row: Sequence[Any]) -> None: ...


class ReportDraft(abc.ABC):
    """The files of one run, written aside and made visible all at once by :meth:`publish`."""

    @abc.abstractmethod
    def csv(self, name: str) -> AbstractContextManager[ReportFile]:
        """A CSV file of the run, written row by row."""

    @abc.abstractmethod
    def write_text(self, name: str, text: str) -> None: ...

    @abc.abstractmethod
    def publish(self) -> None:
        """Make the run's files the reports of its date, replacing an earlier run's in one step."""

    @abc.abstractmethod
    def discard(self) -> None:
        """Remove what the run wrote; the date's published reports stay as they were."""


class ReportArchive(abc.ABC):
    """Where report files live: per run, and per date the files of its latest published run."""

    @abc.abstractmethod
    def draft(self, run_id: str, as_of: date) -> ReportDraft: ...

    @abc.abstractmethod
    def files(self, run_id: str) -> list[str]:
        """The names of a run's files (none for an unknown run)."""

    @abc.abstractmethod
    def path(self, run_id: str, name: str) -> Path | None:
        """The local path of one file of a run, or None."""

    @abc.abstractmethod
    def published_run(self, as_of: date) -> str | None:
        """The run whose files are the reports of ``as_of``, if any."""
