"""What each kind of legacy group (cohort, team, enrollment track) does when its linked user group is
created, renamed, given or relieved of members, or deleted: one class per kind, so that an operation of
:class:`~courseinfra.services.groups.linked.LinkedGroups` asks the link's kind instead of branching.

Every step that changes the legacy side pushes its undo (a description and an action) on the
operation's stack; a step that cannot be undone pushes an action that raises, so that the failure log
names it. A remote backend changes users one call at a time: a step that fails after changing some
(named in the error's ``details``) pushes the undo of those before raising.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from courseinfra.domain.legacy import LegacyError, LegacyKind, LegacyLink, NotDeletable
from courseinfra.services.sync.ports import LegacyGroups

Undo = Callable[[], None]
UndoStack = list[tuple[str, Undo]]


def cannot_undo() -> None:
    raise NotDeletable("cannot be undone")


def _ignore(_value: object) -> None:
    return None


def _remove_undoably(
    remove: Callable[[list[str]], None],
    add_back: Callable[[list[str]], object],
    group: str,
    user_ids: Sequence[str],
    undo: UndoStack,
) -> None:
    """Remove users from a cohort or a team, pushing the undo that adds back those removed: all of
    them, or those a remote backend removed before it failed (named in the error's details)."""
    users = list(user_ids)
    try:
        remove(users)
    except LegacyError as error:
        done = list(error.details)
        if done:
            undo.append((f"add {len(done)} users back to {group}", lambda: _ignore(add_back(done))))
        raise
    undo.append((f"add {len(users)} users back to {group}", lambda: _ignore(add_back(users))))


def _legacy_id(link: LegacyLink) -> str:
    assert link.legacy_id is not None, "the legacy group of a stored link exists"
    return link.legacy_id


class LegacyKindRules(abc.ABC):
    """The legacy operations of one kind of legacy group."""

    kind: LegacyKind
    #: Whether the legacy group can be deleted with its user group.
    deletable = False

    @abc.abstractmethod
    def create_or_check(
        self, legacy: LegacyGroups, link: LegacyLink, name: str, undo: UndoStack
    ) -> LegacyLink:
        """The link with its legacy id: the legacy group it names, checked to exist, or a new one."""

    @abc.abstractmethod
    def members(self, legacy: LegacyGroups, link: LegacyLink) -> set[str]: ...

    @abc.abstractmethod
    def add(
        self, legacy: LegacyGroups, link: LegacyLink, user_ids: Sequence[str], undo: UndoStack
    ) -> Mapping[str, str]:
        """Add users; return those moved out of another legacy group of this kind in the course (user to
        the legacy id they left), whose linked user groups they leave."""

    @abc.abstractmethod
    def remove(
        self, legacy: LegacyGroups, link: LegacyLink, user_ids: Sequence[str], undo: UndoStack
    ) -> None: ...

    def rename(
        self, legacy: LegacyGroups, link: LegacyLink, name: str, old_name: str, undo: UndoStack
    ) -> None:
        """Give the legacy group the user group's new name (nothing for a kind whose name is not the
        group's)."""
        return

    def delete(self, legacy: LegacyGroups, link: LegacyLink, undo: UndoStack) -> None:
        raise NotDeletable(f"a {self.kind.value} cannot be deleted")


class CohortRules(LegacyKindRules):
    """A learner is in at most one cohort of a course: adding moves them; a cohort is never deleted."""

    kind = LegacyKind.COHORT

    def create_or_check(
        self, legacy: LegacyGroups, link: LegacyLink, name: str, undo: UndoStack
    ) -> LegacyLink:
        if link.legacy_id is not None:
            legacy.get_cohort(link.course_id, link.legacy_id)
            return link
        cohort = legacy.create_cohort(link.course_id, name, link.assignment_type)
        # A cohort cannot be deleted: if the rest fails it stays, unlinked, and the log says so.
        undo.append((f"cohort {cohort.cohort_id} of course {link.course_id} stays, unlinked", cannot_undo))
        return replace(link, legacy_id=cohort.cohort_id)

    def members(self, legacy: LegacyGroups, link: LegacyLink) -> set[str]:
        return legacy.cohort_members(link.course_id, _legacy_id(link))

    def add(
        self, legacy: LegacyGroups, link: LegacyLink, user_ids: Sequence[str], undo: UndoStack
    ) -> Mapping[str, str]:
        course, cohort = link.course_id, _legacy_id(link)
        try:
            result = legacy.add_to_cohort(course, cohort, user_ids)
        except LegacyError as error:
            # Those moved from another cohort before the failure cannot be put back (their cohort is not
            # known): the failure log says so.
            done = list(error.details)
            if done:
                undo.append(
                    (
                        f"remove {len(done)} users added before the failure from cohort {cohort}",
                        lambda: legacy.remove_from_cohort(course, cohort, done),
                    )
                )
            raise
        added, moved = list(result.added), dict(result.moved)

        def take_out() -> None:
            if added:
                legacy.remove_from_cohort(course, cohort, added)
            by_previous: dict[str, list[str]] = {}
            for user, previous in moved.items():
                by_previous.setdefault(previous, []).append(user)
            for previous, users in by_previous.items():
                legacy.add_to_cohort(course, previous, users)

        undo.append((f"take {len(added) + len(moved)} users out of cohort {cohort}", take_out))
        return moved

    def remove(
        self, legacy: LegacyGroups, link: LegacyLink, user_ids: Sequence[str], undo: UndoStack
    ) -> None:
        course, cohort = link.course_id, _legacy_id(link)
        _remove_undoably(
            lambda users: legacy.remove_from_cohort(course, cohort, users),
            lambda users: legacy.add_to_cohort(course, cohort, users),
            f"cohort {cohort}",
            user_ids,
            undo,
        )

    def rename(
        self, legacy: LegacyGroups, link: LegacyLink, name: str, old_name: str, undo: UndoStack
    ) -> None:
        course, cohort = link.course_id, _legacy_id(link)
        legacy.update_cohort(course, cohort, name=name)
        undo.append(
            (
                f"rename cohort {cohort} back",
                lambda: _ignore(legacy.update_cohort(course, cohort, name=old_name)),
            )
        )


class TeamRules(LegacyKindRules):
    """A team belongs to a teamset of the course; it can be deleted (and then not restored)."""

    kind = LegacyKind.TEAM
    deletable = True

    def create_or_check(
        self, legacy: LegacyGroups, link: LegacyLink, name: str, undo: UndoStack
    ) -> LegacyLink:
        if link.legacy_id is not None:
            legacy.get_team(link.legacy_id)
            return link
        assert link.teamset_id is not None, "a team criterion names its teamset"
        team = legacy.create_team(link.course_id, link.teamset_id, name)
        undo.append((f"delete team {team.team_id}", lambda: legacy.delete_team(team.team_id)))
        return replace(link, legacy_id=team.team_id)

    def members(self, legacy: LegacyGroups, link: LegacyLink) -> set[str]:
        return legacy.team_members(_legacy_id(link))

    def add(
        self, legacy: LegacyGroups, link: LegacyLink, user_ids: Sequence[str], undo: UndoStack
    ) -> Mapping[str, str]:
        team = _legacy_id(link)
        try:
            added = legacy.add_to_team(team, user_ids)
        except LegacyError as error:
            # Refusals of the whole request change nobody; otherwise those added before the failure (a
            # remote API adds one per call) are taken out again.
            refused = error.code in ("team-full", "already-in-teamset", "not-enrolled")
            done = [] if refused else list(error.details)
            if done:
                undo.append(
                    (
                        f"remove {len(done)} users from team {team}",
                        lambda: legacy.remove_from_team(team, done),
                    )
                )
            raise
        undo.append(
            (f"remove {len(added)} users from team {team}", lambda: legacy.remove_from_team(team, added))
        )
        return {}

    def remove(
        self, legacy: LegacyGroups, link: LegacyLink, user_ids: Sequence[str], undo: UndoStack
    ) -> None:
        team = _legacy_id(link)
        _remove_undoably(
            lambda users: legacy.remove_from_team(team, users),
            lambda users: legacy.add_to_team(team, users),
            f"team {team}",
            user_ids,
            undo,
        )

    def rename(
        self, legacy: LegacyGroups, link: LegacyLink, name: str, old_name: str, undo: UndoStack
    ) -> None:
        team = _legacy_id(link)
        legacy.update_team(team, name=name)
        undo.append((f"rename team {team} back", lambda: _ignore(legacy.update_team(team, name=old_name))))

    def delete(self, legacy: LegacyGroups, link: LegacyLink, undo: UndoStack) -> None:
        team = _legacy_id(link)
        legacy.delete_team(team)
        undo.append((f"team {team} was deleted and cannot be restored", cannot_undo))


class TrackRules(LegacyKindRules):
    """An enrollment track is the mode of an enrolment: a learner is on exactly one track of a course,
    joins another by being moved to it, and never leaves all of them; the course's modes are not the
    group's to create, rename or delete."""

    kind = LegacyKind.TRACK

    def create_or_check(
        self, legacy: LegacyGroups, link: LegacyLink, name: str, undo: UndoStack
    ) -> LegacyLink:
        if link.legacy_id not in {track.mode for track in legacy.list_tracks(link.course_id)}:
            raise LegacyError(
                f"course {link.course_id} offers no {link.legacy_id!r} track", code="unknown-track"
            )
        return link

    def members(self, legacy: LegacyGroups, link: LegacyLink) -> set[str]:
        return legacy.track_members(link.course_id, _legacy_id(link))

    def add(
        self, legacy: LegacyGroups, link: LegacyLink, user_ids: Sequence[str], undo: UndoStack
    ) -> Mapping[str, str]:
        course, mode = link.course_id, _legacy_id(link)
        try:
            previous = legacy.set_track(course, user_ids, mode)
        except LegacyError as error:
            done = list(error.details)
            if done:
                undo.append((f"{len(done)} users were moved to track {mode} before the failure", cannot_undo))
            raise

        def put_back() -> None:
            by_mode: dict[str, list[str]] = {}
            for user, earlier in previous.items():
                by_mode.setdefault(earlier, []).append(user)
            for earlier, users in by_mode.items():
                legacy.set_track(course, users, earlier)

        undo.append((f"put {len(previous)} users back on their previous tracks", put_back))
        return {user: earlier for user, earlier in previous.items() if earlier != mode}

    def remove(
        self, legacy: LegacyGroups, link: LegacyLink, user_ids: Sequence[str], undo: UndoStack
    ) -> None:
        raise NotDeletable(
            f"a learner cannot leave the {link.legacy_id!r} track of course {link.course_id}: a track "
            "changes by moving the learner to another one (add them to the group linked to it)"
        )


RULES: dict[LegacyKind, LegacyKindRules] = {
    rules.kind: rules for rules in (CohortRules(), TeamRules(), TrackRules())
}
