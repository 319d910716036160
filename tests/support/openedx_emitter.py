"""The fake Open edX publishing its changes on the event bus as the LMS does (ADR 0022): genuine Open edX
events, encoded as edx-event-bus-redis writes them, for each change of a learner's cohort, team or
enrolment (``FakeOpenEdx.on_change``).

What the LMS publishes, and so what this sends:

- a learner added to (or moved into) a cohort: ``cohort_membership.changed.v1`` (the new cohort's name)
  and the tracking log ``edx.cohort.user_added``;
- removed from a cohort: only the tracking log ``edx.cohort.user_removed`` (no signal exists);
- added to or removed from a team: only the tracking logs ``edx.team.learner_added`` /
  ``edx.team.learner_removed``;
- enrolled: ``course.enrollment.created.v1``; a mode or activation change:
  ``course.enrollment.changed.v1``, and ``course.unenrollment.completed.v1`` when it turns inactive.

The LMS names users by a numeric id as well as their username: the emitter gives each username a stable
number. ``drop``, ``duplicate`` and ``hold`` let a test lose, repeat or delay (reorder) messages.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from courseinfra.adapters.openedx_bus.wire import encode_entry, envelope_for
from courseinfra.domain.openedx_events import (
    CohortMembershipChanged,
    EnrollmentChanged,
    EnrollmentCreated,
    LmsCourse,
    LmsUser,
    OpenedxEvent,
    OpenedxMessage,
    TrackingLogEmitted,
    UnenrollmentCompleted,
)
from courseinfra.services.openedx.ports import OpenedxBus
from tests.support.openedx import LmsChange

#: The topics (streams, with no prefix) each event type goes to, as an operator's producer config says.
TOPICS = {
    CohortMembershipChanged.event_type: "learning-cohort-membership",
    EnrollmentCreated.event_type: "learning-course-enrollment-lifecycle",
    EnrollmentChanged.event_type: "learning-course-enrollment-lifecycle",
    UnenrollmentCompleted.event_type: "learning-course-enrollment-lifecycle",
    TrackingLogEmitted.event_type: "analytics-tracking-event",
}


@dataclass
class BusEmitter:
    """Sends the fake's changes to ``bus``. ``rng`` decides, per message, to drop it (``drop`` chance),
    send it twice (``duplicate``) or hold it back to be sent later, after others (``hold``)."""

    bus: OpenedxBus
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    drop: float = 0.0
    duplicate: float = 0.0
    hold: float = 0.0
    sent: int = 0
    _ids: dict[str, int] = field(default_factory=dict)
    _held: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, change: LmsChange) -> None:
        for event in self.events(change):
            self._send(event)

    def events(self, change: LmsChange) -> list[OpenedxEvent]:
        user = self._user(change.user)
        course = LmsCourse(course_key=change.course_id, display_name="", start=None, end=None)
        now = datetime.now(UTC)
        context = {"course_id": change.course_id, "user_id": user.id}
        if change.kind == "cohort-added":
            return [
                CohortMembershipChanged(user=user, course=course, cohort_name=change.name),
                self._log(
                    "edx.cohort.user_added",
                    {"cohort_id": int(change.group), "cohort_name": change.name, "user_id": user.id},
                    context,
                ),
            ]
        if change.kind == "cohort-removed":
            data = {"cohort_id": int(change.group), "cohort_name": change.name, "user_id": user.id}
            return [self._log("edx.cohort.user_removed", data, context)]
        if change.kind in ("team-added", "team-removed"):
            name = "edx.team.learner_added" if change.kind == "team-added" else "edx.team.learner_removed"
            method = "added_by_another_user" if change.kind == "team-added" else "removed_by_admin"
            data = {"team_id": change.group, "user_id": user.id, "course_id": change.course_id}
            data["add_method" if change.kind == "team-added" else "remove_method"] = method
            return [self._log(name, data, context)]
        fields = {"user": user, "course": course, "mode": change.name, "is_active": change.active}
        if change.kind == "enrolled":
            return [EnrollmentCreated(**fields, creation_date=now)]  # type: ignore[arg-type]
        changed: list[OpenedxEvent] = [EnrollmentChanged(**fields, creation_date=now)]  # type: ignore[arg-type]
        if not change.active:
            changed.append(UnenrollmentCompleted(**fields, creation_date=now))  # type: ignore[arg-type]
        return changed

    def flush(self) -> None:
        """Send every held message, in a shuffled order."""
        with self._lock:
            held, self._held = self._held, []
        self.rng.shuffle(held)
        for stream, entry in held:
            self.bus.send(stream, entry)
            self.sent += 1

    def _user(self, username: str) -> LmsUser:
        number = self._ids.setdefault(username, 1000 + len(self._ids))
        return LmsUser(
            id=number, username=username, email=f"{username}@example.org", name=username, is_active=True
        )

    @staticmethod
    def _log(name: str, data: dict[str, object], context: dict[str, object]) -> TrackingLogEmitted:
        return TrackingLogEmitted(name=name, timestamp=datetime.now(UTC), data=data, context=context)

    def _send(self, event: OpenedxEvent) -> None:
        entry = encode_entry(OpenedxMessage(envelope_for(event), event))
        stream = TOPICS[event.event_type]
        draw = self.rng.random()
        if draw < self.drop:
            return
        with self._lock:
            if draw < self.drop + self.hold:
                self._held.append((stream, entry))
                return
        copies = 2 if draw < self.drop + self.hold + self.duplicate else 1
        for _ in range(copies):
            self.bus.send(stream, entry)
            self.sent += 1
