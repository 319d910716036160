"""The course metrics aggregator as one pure function of (a micro-batch of requests, the state it reads).

:func:`plan_batch` is what a bus worker or a stream engine runs between its read and its write: given
the requests grouped by enrolment, the enrolments that exist and the course views, it returns the new
enrolment states with their metrics and AUDIT candidates, and a rejection for every request it cannot
apply. It does no I/O; the service reads before it and writes after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from courseinfra.domain.job_requests import EnrolmentUpdateRequest, Outcome, Rejection
from courseinfra.domain.progress import Aggregation, CourseView, EnrolmentKey, EnrolmentState, aggregate

NOT_ENROLLED = Rejection(Outcome.FAILED, "enrolment-not-found", "the user is not enrolled in this batch")


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """``applied``: each aggregated enrolment with its course's channel; ``rejected``: why the requests
    of an enrolment were not applied."""

    applied: tuple[tuple[Aggregation, str | None], ...] = ()
    rejected: Mapping[EnrolmentKey, Rejection] = field(default_factory=dict)


def plan_batch(
    requests: Mapping[EnrolmentKey, Sequence[EnrolmentUpdateRequest]],
    states: Mapping[EnrolmentKey, EnrolmentState],
    views: Mapping[str, CourseView],
    unavailable: Mapping[str, Rejection],
    now: datetime,
) -> BatchPlan:
    """Apply every request of every enrolment, in order; an enrolment without state, or whose course
    has no view, is rejected with its reason."""
    applied: list[tuple[Aggregation, str | None]] = []
    rejected: dict[EnrolmentKey, Rejection] = {}
    for key, enrolment_requests in requests.items():
        view = views.get(key.course_id)
        state = states.get(key)
        if view is None or state is None:
            rejected[key] = unavailable.get(key.course_id) or NOT_ENROLLED
            continue
        updates = [update for request in enrolment_requests for update in request.contents]
        applied.append((aggregate(state, updates, view, now), view.channel))
    return BatchPlan(tuple(applied), rejected)
