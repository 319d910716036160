"""Expected echoes (ADR 0022): courseinfra's own writes to legacy groups, recognised when Open edX
reports them, so that they need no legacy read.

A linked-group operation that adds users to a legacy group or removes them records, in its transaction,
the state it left each user in (:func:`expect_echoes`), for the group written and for the other links
of the course the write moved the users out of (a learner is in one cohort and on one track of a
course). When Open edX events arrive, :func:`consume_echoes` takes each user an event touches whose
event says exactly that state (:func:`~courseinfra.domain.legacy_echoes.is_echo`), while the user group
still agrees with it: that user needs no pull, and the echo is consumed (deleted). A link whose every
touched user was an echo is not pulled at all. The others are pulled as before, so an echo can never
bring a state the legacy system does not have: it only saves reading a state the user group already
has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from courseinfra.domain.legacy import LegacyError, LegacyKind, LegacyLink, link_of
from courseinfra.domain.legacy_echoes import ExpectedEcho, is_echo
from courseinfra.domain.legacy_events import Touched
from courseinfra.domain.openedx_events import OpenedxEvent
from courseinfra.services.sync.ports import LegacyGroups
from courseinfra.services.unit_of_work import UnitOfWork

#: How long an echo is expected by default: long enough for the event bus to deliver it under load.
DEFAULT_ECHO_TTL = timedelta(minutes=10)
#: Expired echoes deleted per write (each write prunes, so the table holds about a TTL's worth).
PRUNE_PER_WRITE = 1000


def expect_echoes(
    uow: UnitOfWork,
    legacy: LegacyGroups,
    group_id: str,
    link: LegacyLink,
    *,
    added: Sequence[str] = (),
    removed: Sequence[str] = (),
    now: datetime,
    ttl: timedelta,
) -> int:
    """Record the echoes of adding ``added`` to the legacy group of ``group_id``'s link and removing
    ``removed`` from it, in ``uow``'s transaction (the write's), expiring ``ttl`` from ``now``, and prune
    expired ones. A cohort or track add also expects, on every other link of that kind in the course,
    that the users are not in its legacy group (the event names where they went). Returns how many."""
    if not added and not removed:
        return 0
    uow.echoes.prune(now, limit=PRUNE_PER_WRITE)
    expires = now + ttl
    echoes = [ExpectedEcho(group_id, user, False, None, expires) for user in removed]
    if added:
        state = _state_named(legacy, link)
        echoes += [ExpectedEcho(group_id, user, True, state, expires) for user in added]
        if link.kind is not LegacyKind.TEAM:
            # A learner is in one cohort, and on one track, of a course: the others' events see them go.
            for other, other_link in _links(uow):
                if (
                    other != group_id
                    and other_link.kind is link.kind
                    and other_link.course_id == link.course_id
                    and other_link.legacy_id != link.legacy_id
                ):
                    echoes += [ExpectedEcho(other, user, False, state, expires) for user in added]
    uow.echoes.expect(echoes)
    return len(echoes)


def _state_named(legacy: LegacyGroups, link: LegacyLink) -> str | None:
    """What an event names of a user added to the link's legacy group: a cohort's name (the cohort
    membership event names the cohort by it), a track's mode; nothing for a team."""
    assert link.legacy_id is not None, "a written legacy group exists"
    if link.kind is LegacyKind.COHORT:
        try:
            return legacy.get_cohort(link.course_id, link.legacy_id).name
        except LegacyError:
            # The write is done: an echo saves a later read, and is no reason to undo it. Without the
            # name, no event matches the echo, and the event is pulled.
            return None
    if link.kind is LegacyKind.TRACK:
        return link.legacy_id
    return None


def _links(uow: UnitOfWork) -> list[tuple[str, LegacyLink]]:
    return [(g.group_id, link) for g in uow.groups.all() if (link := link_of(g.criteria)) is not None]


@dataclass(frozen=True, slots=True)
class Sorted:
    """What :func:`consume_echoes` left to act on: each event with the links it touches and, for each,
    the users that still need a pull (a link none of whose touched users does is left out); and how
    many echoes were consumed."""

    touched: list[tuple[OpenedxEvent, list[Touched]]]
    consumed: int


def consume_echoes(
    uow_factory: Callable[[], UnitOfWork],
    touched: Sequence[tuple[OpenedxEvent, Sequence[Touched]]],
    now: datetime,
) -> Sorted:
    """Take out of each event's touched links (in the events' order) the users for whom the event is an
    echo: a live expected echo whose state the event says (``is_echo``), of a user whose membership of
    the user group is still the one the echo records; and consume those echoes, in one transaction. An
    echo is consumed once: a second event saying the same state pulls. A link touched whole (a tracking
    log) and an unenrolment's leaving are left as they are."""
    wanted: dict[str, set[str]] = {}
    for _, links in touched:
        for each in links:
            if each.users is not None and not each.unenrolled:
                wanted.setdefault(each.group_id, set()).update(each.users)
    if not wanted:
        return Sorted([(event, list(links)) for event, links in touched], 0)
    with uow_factory() as uow:
        live = {group_id: uow.echoes.find(group_id, sorted(users), now) for group_id, users in wanted.items()}
        consumed: dict[str, list[str]] = {}
        left: list[tuple[OpenedxEvent, list[Touched]]] = []
        for event, links in touched:
            kept: list[Touched] = []
            for each in links:
                echoes = live.get(each.group_id)
                if each.users is None or each.unenrolled or not echoes:
                    kept.append(each)
                    continue
                rest = []
                for user in each.users:
                    echo = echoes.get(user)
                    if (
                        echo is not None
                        and is_echo(event, each.link, echo, now)
                        # The event says the state the echo records; the user group must still have it.
                        and uow.memberships.is_member(each.group_id, user) == echo.member
                    ):
                        del echoes[user]
                        consumed.setdefault(each.group_id, []).append(user)
                    else:
                        rest.append(user)
                if rest:
                    kept.append(replace(each, users=tuple(rest)))
            left.append((event, kept))
        for group_id, users in consumed.items():
            uow.echoes.clear(group_id, users)
        uow.commit()
    return Sorted(left, sum(len(users) for users in consumed.values()))
