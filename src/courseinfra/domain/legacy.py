"""The legacy groups of Open edX, with the rules their users know: cohorts, teams and enrollment tracks.

These are the rules both legacy backends enforce (the local tables and, through its REST APIs, a real
Open edX instance; a test server reproduces the latter from this module): every breach is a
:class:`LegacyError` with a stable code.

- Cohorts: per course; a name is unique within its course; a user is in at most one cohort of a course,
  and adding them to another cohort moves them; assignment is ``random`` or ``manual``, and the last
  random cohort of a course cannot become manual; cohorts cannot be deleted.
- Teams: per course, in teamsets of type open, public managed, private managed or open managed, each
  with a maximum team size; a user is in at most one team of a teamset, and must be enrolled in the
  course; teams can be deleted, with their memberships.
- Enrollment tracks: the modes a course offers; a user's track is the mode of their enrolment, exactly
  one per course; tracks cannot be deleted.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from pydantic import Field, model_validator

from courseinfra.domain.criteria import (
    Criterion,
    CriterionType,
    EvaluationContext,
    Node,
    StrictConfig,
    UserFacts,
)
from courseinfra.domain.errors import DomainError, ErrorKind


class LegacyError(DomainError):
    """A legacy group rule was broken, or the legacy system failed. ``details`` lists what is known
    (users that could not be added, say)."""

    code = "legacy-error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        kind: ErrorKind | None = None,
        details: Sequence[str] = (),
    ) -> None:
        super().__init__(message, code=code, kind=kind)
        self.details = list(details)


class UnknownCourse(LegacyError):
    """A legacy group asked for in a course the platform does not know (Open edX refuses an unknown
    course key too)."""

    code = "course-not-found"
    kind = ErrorKind.NOT_FOUND


class CohortNameExists(LegacyError):
    code = "cohort-name-exists"
    kind = ErrorKind.CONFLICT


class CohortNotFound(LegacyError):
    code = "cohort-not-found"
    kind = ErrorKind.NOT_FOUND


class LastRandomCohort(LegacyError):
    code = "last-random-cohort"


class NotDeletable(LegacyError):
    """Cohorts and enrollment tracks cannot be deleted."""

    code = "legacy-not-deletable"
    kind = ErrorKind.CONFLICT


class UserNotInCohort(LegacyError):
    code = "user-not-in-cohort"


class TeamsetNotFound(LegacyError):
    code = "teamset-not-found"
    kind = ErrorKind.NOT_FOUND


class TeamNotFound(LegacyError):
    code = "team-not-found"
    kind = ErrorKind.NOT_FOUND


class TeamFull(LegacyError):
    code = "team-full"


class AlreadyInTeamset(LegacyError):
    code = "already-in-teamset"


class NotEnrolled(LegacyError):
    code = "not-enrolled"


class UserNotInTeam(LegacyError):
    code = "user-not-in-team"


class UnknownTrack(LegacyError):
    code = "unknown-track"


class UserNotFound(LegacyError):
    code = "user-not-found"
    kind = ErrorKind.NOT_FOUND


class LegacyUnavailable(LegacyError):
    """The legacy system could not be reached or answered with an error it does not explain."""

    code = "legacy-unavailable"
    kind = ErrorKind.UPSTREAM


class AssignmentType(enum.StrEnum):
    RANDOM = "random"
    MANUAL = "manual"


class TeamsetType(enum.StrEnum):
    OPEN = "open"
    PUBLIC_MANAGED = "public_managed"
    PRIVATE_MANAGED = "private_managed"
    OPEN_MANAGED = "open_managed"


class Authority(enum.StrEnum):
    """Which side of a link is the truth (ADR 0022)."""

    USER_GROUP = "user_group"  # courseinfra's edits go to the legacy group; a legacy edit is drift
    LEGACY = "legacy"  # the user group mirrors the legacy group; courseinfra's edits are refused
    BOTH = "both"  # courseinfra's edits go to the legacy group, legacy edits come back by events


class LegacyAuthoritative(DomainError):
    """A membership edit (or a rename) through courseinfra of a group whose link names the legacy group
    as the authority: it is made in the legacy system, and comes back by events and reconciliation."""

    code = "legacy-authoritative"
    kind = ErrorKind.CONFLICT


class LegacyKind(enum.StrEnum):
    COHORT = "cohort"
    TEAM = "team"
    TRACK = "track"


@dataclass(frozen=True, slots=True)
class Cohort:
    cohort_id: str
    course_id: str
    name: str
    assignment_type: AssignmentType = AssignmentType.MANUAL
    user_count: int = 0


@dataclass(frozen=True, slots=True)
class Teamset:
    teamset_id: str
    course_id: str
    name: str
    type: TeamsetType = TeamsetType.OPEN
    max_team_size: int = 50


@dataclass(frozen=True, slots=True)
class Team:
    team_id: str
    course_id: str
    teamset_id: str
    name: str
    description: str = ""
    size: int = 0


@dataclass(frozen=True, slots=True)
class Track:
    """A mode a course offers (``audit``, ``verified``, ...)."""

    course_id: str
    mode: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class CohortAddResult:
    """What adding users to a cohort did: added (in no cohort of the course before), moved (from
    another cohort: user to that cohort's id) and present (already in this cohort)."""

    added: tuple[str, ...] = ()
    moved: Mapping[str, str] = field(default_factory=dict)
    present: tuple[str, ...] = ()


# --- rules ---------------------------------------------------------------------------------------------


def check_cohort_name(
    course_id: str, name: str, existing: Iterable[Cohort], *, renaming: str | None = None
) -> str:
    """The trimmed name, if no other cohort of the course has it (``renaming``: the cohort being renamed)."""
    clean = name.strip()
    if not clean:
        raise LegacyError("a cohort needs a name", code="invalid-cohort")
    for cohort in existing:
        if cohort.course_id == course_id and cohort.name == clean and cohort.cohort_id != renaming:
            raise CohortNameExists(f"course {course_id} already has a cohort named {clean!r}")
    return clean


def check_assignment_change(
    cohort: Cohort, new_type: AssignmentType, course_cohorts: Iterable[Cohort]
) -> None:
    """A course with cohorts keeps at least one random cohort: its last one cannot become manual."""
    if cohort.assignment_type is AssignmentType.RANDOM and new_type is not AssignmentType.RANDOM:
        others = [
            c
            for c in course_cohorts
            if c.cohort_id != cohort.cohort_id and c.assignment_type is AssignmentType.RANDOM
        ]
        if not others:
            raise LastRandomCohort(
                f"cohort {cohort.name!r} is the last random cohort of course {cohort.course_id}: "
                "there must be one to which learners can be assigned automatically"
            )


def plan_cohort_add(cohort: Cohort, user_ids: Iterable[str], current: Mapping[str, str]) -> CohortAddResult:
    """Adding ``user_ids`` to ``cohort``, where ``current`` maps users to their cohort in the course."""
    added, present = [], []
    moved: dict[str, str] = {}
    for user_id in dict.fromkeys(user_ids):
        previous = current.get(user_id)
        if previous is None:
            added.append(user_id)
        elif previous == cohort.cohort_id:
            present.append(user_id)
        else:
            moved[user_id] = previous
    return CohortAddResult(tuple(added), moved, tuple(present))


def check_team_additions(
    team: Team,
    teamset: Teamset,
    user_ids: Sequence[str],
    *,
    members: Iterable[str],
    team_in_teamset: Mapping[str, str],
    enrolled: Iterable[str],
) -> list[str]:
    """The users to add (those already in the team are skipped), if every one may join: the team stays
    within its teamset's size, no user is in another team of the teamset, every user is enrolled in the
    course. All or nothing: the first rule broken is raised with every user that breaks it."""
    current = set(members)
    new = [u for u in dict.fromkeys(user_ids) if u not in current]
    elsewhere = sorted(u for u in new if team_in_teamset.get(u) not in (None, team.team_id))
    if elsewhere:
        raise AlreadyInTeamset(
            f"{len(elsewhere)} users are already in another team of teamset {teamset.teamset_id}",
            details=elsewhere,
        )
    enrolled_set = set(enrolled)
    outside = sorted(u for u in new if u not in enrolled_set)
    if outside:
        raise NotEnrolled(
            f"{len(outside)} users are not enrolled in course {team.course_id}", details=outside
        )
    if len(current) + len(new) > teamset.max_team_size:
        raise TeamFull(
            f"team {team.name!r} would have {len(current) + len(new)} members; its teamset allows "
            f"{teamset.max_team_size}",
            details=new[teamset.max_team_size - len(current) :]
            if len(current) <= teamset.max_team_size
            else new,
        )
    return new


def check_track(course_id: str, mode: str, tracks: Iterable[Track]) -> None:
    if mode not in {track.mode for track in tracks if track.course_id == course_id}:
        raise UnknownTrack(f"course {course_id} offers no {mode!r} track")


# --- legacy criteria: a user group linked to a legacy group ----------------------------------------------
#
# A user group whose criteria is one legacy criterion mirrors that legacy group: the legacy group's id is
# kept in the criterion's config, every operation on the user group is carried out on the legacy group
# first (services/groups/linked.py), and a refresh pulls the legacy membership. The criterion cannot be
# evaluated from the platform's own data, so it is never combined with others (``standalone``).


class LinkPolicy(StrictConfig):
    """What every link config holds beside its legacy group: which side is the authority, and whether
    membership follows enrolment (ADR 0022). A link stored before these existed reads the defaults."""

    authority: Authority = Field(
        Authority.USER_GROUP,
        description="user_group (courseinfra's edits go to the legacy group, legacy edits are drift "
        "undone by reconciliation), legacy (the user group mirrors the legacy group, edits through "
        "courseinfra are refused) or both (edits either way; events and reconciliation pull).",
    )
    follow_enrolment: bool = Field(
        False,
        description="An unenrolment removes the learner from the legacy group and the user group "
        "(cohorts and teams only).",
    )


class LegacyCohortConfig(LinkPolicy):
    course_id: str = Field(min_length=1, description="The course of the cohort.")
    cohort_id: str | None = Field(None, description="The linked cohort; absent: a cohort is created.")
    assignment_type: AssignmentType = Field(AssignmentType.MANUAL, description="For a cohort created.")


class LegacyTeamConfig(LinkPolicy):
    course_id: str = Field(min_length=1, description="The course of the team.")
    teamset_id: str = Field(min_length=1, description="The teamset of the team.")
    team_id: str | None = Field(None, description="The linked team; absent: a team is created.")


class LegacyTrackConfig(LinkPolicy):
    course_id: str = Field(min_length=1, description="The course.")
    mode: str = Field(min_length=1, description="The enrollment mode (track): audit, verified, ...")

    @model_validator(mode="after")
    def _no_follow_enrolment(self) -> LegacyTrackConfig:
        # A track is the mode of an enrolment: an unenrolled learner is on no track already.
        if self.follow_enrolment:
            raise ValueError(
                "follow_enrolment is for cohort and team links: a track's members are its enrolled "
                "learners already"
            )
        return self


class LegacyCriterion(CriterionType):
    """Membership of a legacy group; evaluated by the legacy system, never in SQL or from facts."""

    kind: ClassVar[LegacyKind]
    operators = ("member_of",)
    facts = frozenset()
    standalone = True

    def holds(self, operator: str, config: Any, facts: UserFacts, context: EvaluationContext) -> bool:
        raise LegacyError(
            f"a {self.name} criterion is evaluated by the legacy system, not from the platform's data",
            code="legacy-criterion",
        )


class LegacyCohortCriterion(LegacyCriterion):
    name = "legacy_cohort"
    description = "Members of a cohort (Open edX cohorts): the user group mirrors it."
    config_model = LegacyCohortConfig
    kind = LegacyKind.COHORT


class LegacyTeamCriterion(LegacyCriterion):
    name = "legacy_team"
    description = "Members of a team of a teamset (Open edX teams): the user group mirrors it."
    config_model = LegacyTeamConfig
    kind = LegacyKind.TEAM


class LegacyTrackCriterion(LegacyCriterion):
    name = "legacy_track"
    description = (
        "Learners enrolled in a course in a mode (Open edX enrollment track): the user group mirrors it."
    )
    config_model = LegacyTrackConfig
    kind = LegacyKind.TRACK


LEGACY_TYPES: tuple[CriterionType, ...] = (
    LegacyCohortCriterion(),
    LegacyTeamCriterion(),
    LegacyTrackCriterion(),
)


@dataclass(frozen=True, slots=True)
class LegacyLink:
    """Which legacy group a user group mirrors."""

    kind: LegacyKind
    course_id: str
    legacy_id: str | None  # cohort id, team id or mode; None before the legacy group is created
    teamset_id: str | None = None
    assignment_type: AssignmentType = AssignmentType.MANUAL
    authority: Authority = Authority.USER_GROUP
    follow_enrolment: bool = False

    def config(self) -> dict[str, Any]:
        policy = {"authority": self.authority.value, "follow_enrolment": self.follow_enrolment}
        if self.kind is LegacyKind.COHORT:
            return {
                "course_id": self.course_id,
                "cohort_id": self.legacy_id,
                "assignment_type": self.assignment_type.value,
                **policy,
            }
        if self.kind is LegacyKind.TEAM:
            return {
                "course_id": self.course_id,
                "teamset_id": self.teamset_id,
                "team_id": self.legacy_id,
                **policy,
            }
        return {"course_id": self.course_id, "mode": self.legacy_id, **policy}

    def same_legacy_group(self, other: LegacyLink) -> bool:
        """Whether ``other`` names the same legacy group (its authority and follow_enrolment aside)."""
        return (self.kind, self.course_id, self.legacy_id, self.teamset_id) == (
            other.kind,
            other.course_id,
            other.legacy_id,
            other.teamset_id,
        )

    def criteria(self) -> dict[str, Any]:
        names = {
            LegacyKind.COHORT: "legacy_cohort",
            LegacyKind.TEAM: "legacy_team",
            LegacyKind.TRACK: "legacy_track",
        }
        config = {key: value for key, value in self.config().items() if value is not None}
        return {"type": names[self.kind], "operator": "member_of", "config": config}


def link_of(node: Node | None) -> LegacyLink | None:
    """The legacy link of a criteria tree that is one legacy criterion; None for any other tree."""
    if not isinstance(node, Criterion):
        return None
    config = node.model
    if isinstance(config, LegacyCohortConfig):
        link = LegacyLink(
            LegacyKind.COHORT, config.course_id, config.cohort_id, assignment_type=config.assignment_type
        )
    elif isinstance(config, LegacyTeamConfig):
        link = LegacyLink(LegacyKind.TEAM, config.course_id, config.team_id, teamset_id=config.teamset_id)
    elif isinstance(config, LegacyTrackConfig):
        link = LegacyLink(LegacyKind.TRACK, config.course_id, config.mode)
    else:
        return None
    return replace(link, authority=config.authority, follow_enrolment=config.follow_enrolment)
