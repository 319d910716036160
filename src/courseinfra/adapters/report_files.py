"""Report files in a local folder, published atomically per date.

Layout under the reports folder::

    runs/<run id>/            the files of a finished run
    runs/<run id>.partial/    a run being written (never read as a report)
    <as-of date>              a symbolic link to the run whose files are that date's reports

A run writes into its ``.partial`` folder, renames it when every file is closed and flushed, then
replaces the date's link in one ``rename``: a reader sees the date's earlier reports or the new ones,
never a mixture and never a half-written file. The run the link pointed to before is then removed. An
interrupted run leaves only its ``.partial`` folder, which no date links to.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import IO, Any

from courseinfra.services.reports.ports import ReportArchive, ReportDraft, ReportFile

PARTIAL = ".partial"


def _safe_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"invalid report file name {name!r}")
    return name


class _CsvFile(ReportFile):
    def __init__(self, stream: IO[str]) -> None:
        self.writer = csv.writer(stream)

    def write_row(self, row: Sequence[Any]) -> None:
        self.writer.writerow(row)


def _flush_to_disk(path: Path) -> None:
    with path.open("rb") as stream:
        os.fsync(stream.fileno())


class LocalReportDraft(ReportDraft):
    def __init__(self, root: Path, run_id: str, as_of: date) -> None:
        self.root = root
        self.run_id = _safe_name(run_id)
        self.as_of = as_of
        self.folder = root / "runs" / f"{run_id}{PARTIAL}"
        self.folder.mkdir(parents=True, exist_ok=False)

    @contextmanager
    def csv(self, name: str) -> Iterator[ReportFile]:
        with (self.folder / _safe_name(name)).open("w", newline="", encoding="utf-8") as stream:
            yield _CsvFile(stream)

    def write_text(self, name: str, text: str) -> None:
        (self.folder / _safe_name(name)).write_text(text, encoding="utf-8")

    def publish(self) -> None:
        for path in self.folder.iterdir():
            _flush_to_disk(path)
        final = self.root / "runs" / self.run_id
        self.folder.rename(final)
        link = self.root / self.as_of.isoformat()
        if link.exists() and not link.is_symlink():
            raise FileExistsError(f"{link} is not a link made by a report run; move it away")
        previous = link.resolve() if link.is_symlink() else None
        staged = self.root / f".{self.as_of.isoformat()}.{self.run_id}.link"
        staged.symlink_to(Path("runs") / self.run_id)
        os.replace(staged, link)
        if previous is not None and previous != final.resolve() and previous.parent == final.parent.resolve():
            shutil.rmtree(previous, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class LocalReportArchive(ReportArchive):
    """Report files under ``root`` (created on first use)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def draft(self, run_id: str, as_of: date) -> ReportDraft:
        return LocalReportDraft(self.root, run_id, as_of)

    def _run_folder(self, run_id: str) -> Path | None:
        try:
            folder = self.root / "runs" / _safe_name(run_id)
        except ValueError:
            return None
        return folder if folder.is_dir() else None

    def files(self, run_id: str) -> list[str]:
        folder = self._run_folder(run_id)
        return [] if folder is None else sorted(path.name for path in folder.iterdir() if path.is_file())

    def path(self, run_id: str, name: str) -> Path | None:
        folder = self._run_folder(run_id)
        try:
            candidate = None if folder is None else folder / _safe_name(name)
        except ValueError:
            return None
        return candidate if candidate is not None and candidate.is_file() else None

    def published_run(self, as_of: date) -> str | None:
        link = self.root / as_of.isoformat()
        return link.resolve().name if link.is_symlink() else None
