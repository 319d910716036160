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
    of an enrolment were not applied; ``partly_skipped``: by enrolment and index of its request, why
    some contents of an applied request were left out."""

    applied: tuple[tuple[Aggregation, str | None], ...] = ()
    rejected: Mapping[EnrolmentKey, Rejection] = field(default_factory=dict)
    partly_skipped: Mapping[EnrolmentKey, Mapping[int, Rejection]] = field(default_factory=dict)


#: Content ids named in a skip reason, at most.
NAMED_CONTENTS = 10


def not_in_course(request: EnrolmentUpdateRequest, view: CourseView) -> Rejection | None:
    """Why some of the request's contents are left out: they are not leaves of the course (a content of
    another course, a unit, a removed resource). They are not merged into the statuses; the event is
    kept as skipped, to be replayed if a republication makes them leaves."""
    unknown = sorted({u.content_id for u in request.contents if u.content_id not in view.course_leaves})
    if not unknown:
        return None
    named = ", ".join(unknown[:NAMED_CONTENTS]) + (" ..." if len(unknown) > NAMED_CONTENTS else "")
    applied = len(request.contents) - sum(1 for u in request.contents if u.content_id in unknown)
    return Rejection(
        Outcome.SKIPPED,
        "content-not-in-course",
        f"not leaves of course {view.course_id}: {named}; {applied} other content update(s) applied",
    )


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
    partly_skipped: dict[EnrolmentKey, dict[int, Rejection]] = {}
    for key, enrolment_requests in requests.items():
        view = views.get(key.course_id)
        state = states.get(key)
        if view is None or state is None:
            rejected[key] = unavailable.get(key.course_id) or NOT_ENROLLED
            continue
        for index, request in enumerate(enrolment_requests):
            if skipped := not_in_course(request, view):
                partly_skipped.setdefault(key, {})[index] = skipped
        leaves = view.course_leaves
        updates = [u for request in enrolment_requests for u in request.contents if u.content_id in leaves]
        applied.append((aggregate(state, updates, view, now), view.channel))
    return BatchPlan(tuple(applied), rejected, partly_skipped)
