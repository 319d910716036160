"""Samples of the job counters over time, for events per second (ADR 0025).

The counters are cumulative rows that every counting transaction adds to; a rate needs their values at
known times. After a commit that counted, the process that made it takes a snapshot of every counter,
at most once per bucket of ``every`` seconds of the wall clock: the first counting commit of a bucket, in
whichever process (API, CLI, ingest workers, consumers on one database), writes it, and the others'
attempts in that bucket write nothing (the bucket is the samples' key). The hot path pays a clock read
and a comparison; once per bucket and process, one small transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from courseinfra.services.unit_of_work import UowFactory

log = logging.getLogger(__name__)


def bucket_start(at: datetime, every: timedelta) -> datetime:
    """The start of the bucket of ``every`` seconds (from the Unix epoch) that holds ``at``."""
    seconds = every.total_seconds()
    return datetime.fromtimestamp(at.timestamp() // seconds * seconds, UTC)


class CounterSampler:
    """Takes a sample of the job counters after a counting commit (:meth:`counted`, the units of work's
    ``on_count``) when this process has not tried yet in the current bucket, and forgets the samples
    older than ``retention``. A sample that fails (the database busy) is logged and skipped: the next
    bucket's is taken, and the commit that triggered it stands."""

    def __init__(
        self,
        uow_factory: UowFactory,
        every: timedelta,
        retention: timedelta,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.uow_factory = uow_factory
        self.every = every
        self.retention = retention
        self.clock = clock
        self._seconds = every.total_seconds()
        self._tried: float | None = None
        self._lock = threading.Lock()

    def counted(self) -> None:
        """A commit added to the counters: sample, unless this process tried already in this bucket."""
        now = self.clock()
        bucket = now // self._seconds
        if bucket == self._tried:
            return
        with self._lock:
            if bucket == self._tried:
                return
            self._tried = bucket
        self.sample(datetime.fromtimestamp(now, UTC))

    def sample(self, at: datetime) -> int:
        """Keep the counters as the sample of ``at``'s bucket (nothing if another process took it) and
        prune what is older than the retention; return how many counters were kept."""
        try:
            with self.uow_factory() as uow:
                kept = uow.counters.snapshot(bucket_start(at, self.every), at)
                uow.counters.prune_samples(at - self.retention)
                uow.commit()
        except Exception:
            log.warning("sampling the job counters failed; the next bucket's sample is taken", exc_info=True)
            return 0
        return kept
