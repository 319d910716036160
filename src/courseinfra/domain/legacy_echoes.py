"""Expected echoes (ADR 0022): the legacy state courseinfra's own write made, and whether an Open edX
event is that write coming back.

When courseinfra adds users to a legacy group or removes them, Open edX publishes events about it, and
those events touch the linked user groups as a legacy edit would. An :class:`ExpectedEcho` records, per
user group and user, the state courseinfra left the user in; an event that says exactly that state is
the echo, which needs no legacy read: the user group agreed with that state when the echo was recorded,
and every later change of the user group's membership for the user forgets the echo.

- ``member``: whether the user is in the group's legacy group;
- ``state``: what an event names of that state: the name of the cohort the user is now in (for every
  cohort link of the course: the one they joined, and the others they are not in), or the mode of their
  enrolment (for every track link of the course); None where no event names it (a team, a removal
  from a cohort: only tracking logs report those, and they name the learner by the LMS's numeric id);
- ``expires_at``: past it, the echo is not used (and is pruned).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from courseinfra.domain.legacy import LegacyKind, LegacyLink
from courseinfra.domain.openedx_events import (
    CohortMembershipChanged,
    EnrollmentEvent,
    OpenedxEvent,
    UnenrollmentCompleted,
)


@dataclass(frozen=True, slots=True)
class ExpectedEcho:
    """The legacy state courseinfra made for ``user_id`` in the legacy group of ``group_id``'s link."""

    group_id: str
    user_id: str
    member: bool
    state: str | None
    expires_at: datetime

    def live(self, now: datetime) -> bool:
        return now < self.expires_at


def is_echo(event: OpenedxEvent, link: LegacyLink, echo: ExpectedEcho, now: datetime) -> bool:
    """Whether ``event``, touching ``echo``'s group (linked by ``link``) for its user, says exactly the
    state the echo records, while the echo lives:

    - a cohort membership change naming the cohort the echo says the user is in (for a cohort link);
    - an active enrolment created or changed with the mode the echo says (for a track link).

    Nothing else is an echo: an unenrolment (courseinfra never unenrols), and the tracking logs (they
    name the learner by the LMS's numeric id only, which courseinfra does not map to its users yet)."""
    if not echo.live(now) or echo.state is None:
        return False
    if isinstance(event, CohortMembershipChanged):
        return (
            link.kind is LegacyKind.COHORT
            and link.course_id == event.course_key
            and echo.state == event.cohort_name
        )
    if isinstance(event, EnrollmentEvent):
        return (
            link.kind is LegacyKind.TRACK
            and link.course_id == event.course_key
            and event.is_active
            and not isinstance(event, UnenrollmentCompleted)
            and echo.state == event.mode
        )
    return False
