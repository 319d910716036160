"""Running a unit of work again when it lost to a concurrent writer."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from courseinfra.services.unit_of_work import Contention

T = TypeVar("T")

#: Attempts of one unit of work before its :class:`Contention` reaches the caller.
ATTEMPTS = 8


def retrying(
    work: Callable[[], T],
    *,
    attempts: int = ATTEMPTS,
    first_wait: float = 0.02,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``work()``, run again while it raises :class:`Contention` (it was rolled back whole), after a
    random wait that doubles each time (20 ms, 40 ms, ...), up to ``attempts`` runs in all; the last
    :class:`Contention` is raised. ``work`` opens its own unit of work, so that each run starts afresh."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except Contention:
            if attempt == attempts:
                raise
            sleep(random.uniform(0.5, 1.0) * first_wait * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # pragma: no cover
