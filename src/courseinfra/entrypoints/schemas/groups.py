"""User groups: definitions, merge patches, previews, members and history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema

from courseinfra.domain.criteria import CriteriaRegistry, Fact, criteria_json
from courseinfra.domain.groups import GROUP_ID, NAME_MAX, UserGroup
from courseinfra.entrypoints.schemas.common import InvalidBody, Timestamp, iso
from courseinfra.entrypoints.schemas.users import MASKED
from courseinfra.services import groups
from courseinfra.services.groups import GroupView
from courseinfra.services.groups.ports import Member, MembershipChange, RefreshResult

CRITERIA_EXAMPLE = {
    "and": [
        {"type": "course_enrolment", "operator": "is", "config": {"course_id": "democourse"}},
        {"not": {"type": "last_login", "operator": "within_days", "config": {"days": 30}}},
    ]
}
CriteriaTree = Annotated[
    dict[str, Any] | None,
    Field(
        description="A tree of {and: [...]}, {or: [...]}, {not: ...} over criteria {type, operator, "
        "config} (see /v1/criteria/types); null: no criteria, only the include list.",
        examples=[CRITERIA_EXAMPLE],
    ),
]


#: What :meth:`Scope.parse` reads (``instance``, ``organisation:<name>``, ``course:<id>``), as a pattern.
SCOPE_PATTERN = r"^\s*(instance\s*(:\s*)?|(organisation|course)\s*:[\s\S]*\S[\s\S]*)$"


ScopeText = Annotated[
    str,
    Field(
        description="instance, organisation:<name> or course:<course id>.",
        examples=["instance"],
        json_schema_extra={"pattern": SCOPE_PATTERN},
    ),
]


#: A group's name, as :class:`UserGroup` takes it: not blank, at most NAME_MAX characters.
NAME_SCHEMA: dict[str, Any] = {"minLength": 1, "maxLength": NAME_MAX, "pattern": r"\S"}


UserIds = Annotated[list[str], Field(description="User ids; the exclude list wins over everything.")]


class GroupDefinitionIn(BaseModel):
    """A group's whole definition (PUT replaces it: a missing optional field takes its default)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique in its scope.", json_schema_extra=NAME_SCHEMA)
    scope: ScopeText
    description: str = ""
    # Strict: as the schema says, 0 or "yes" is not a boolean.
    enabled: StrictBool = Field(True, description="A disabled group is refreshed only on demand.")
    frozen: StrictBool = Field(False, description="A frozen group keeps its members: refreshes are refused.")
    criteria: CriteriaTree = None
    include: UserIds = Field(default_factory=list)
    exclude: UserIds = Field(default_factory=list)

    def definition(self) -> groups.GroupDefinition:
        return groups.GroupDefinition(
            name=self.name,
            scope=self.scope,
            description=self.description,
            enabled=self.enabled,
            frozen=self.frozen,
            criteria=self.criteria,
            include=self.include,
            exclude=self.exclude,
        )


class GroupIn(GroupDefinitionIn):
    group_id: str = Field(
        description="1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit.",
        json_schema_extra={"pattern": GROUP_ID.pattern},
    )


class GroupPatchIn(BaseModel):
    """A JSON merge patch: only the fields present change. null resets a field to its default (no
    criteria, empty lists, an empty description, enabled, not frozen); name and scope cannot be null."""

    model_config = ConfigDict(extra="forbid")

    # Not null (a 422 says so): their schemas are the strings they take.
    name: Annotated[str | None, WithJsonSchema({"type": "string", **NAME_SCHEMA})] = None
    scope: Annotated[str | None, WithJsonSchema({"type": "string", "pattern": SCOPE_PATTERN})] = None
    description: str | None = None
    enabled: StrictBool | None = None
    frozen: StrictBool | None = None
    criteria: CriteriaTree = None
    include: list[str] | None = None
    exclude: list[str] | None = None

    def changes(self) -> dict[str, Any]:
        """The keyword arguments of :func:`groups.update_group` for the fields present."""
        given = {name: getattr(self, name) for name in self.model_fields_set}
        for required in ("name", "scope"):
            if required in given and given[required] is None:
                raise InvalidBody(f"{required} cannot be null")
        defaults: dict[str, Any] = {
            "description": "",
            "enabled": True,
            "frozen": False,
            "include": [],
            "exclude": [],
        }
        return {
            name: defaults[name] if value is None and name in defaults else value
            for name, value in given.items()
        }


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    criteria: CriteriaTree = Field(
        None, description="Criteria to try instead of the stored ones (absent: the stored ones; null: none)."
    )


class GroupSummaryOut(BaseModel):
    """A group's definition and membership summary, without its include and exclude lists (what
    ``groups list`` prints and ``GET /v1/groups`` returns)."""

    group_id: str
    name: str
    scope: str
    description: str
    enabled: bool
    frozen: bool
    criteria: dict[str, Any] | None
    version: int = Field(description='The ETag is "<group_id>.<version>".')
    member_count: int
    last_refreshed_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, group: UserGroup) -> Self:
        return cls(**_summary(group))


def _summary(group: UserGroup) -> dict[str, Any]:
    return {
        "group_id": group.group_id,
        "name": group.name,
        "scope": str(group.scope),
        "description": group.description,
        "enabled": group.enabled,
        "frozen": group.frozen,
        "criteria": None if group.criteria is None else criteria_json(group.criteria),
        "version": group.version,
        "member_count": group.member_count,
        "last_refreshed_at": iso(group.last_refreshed_at),
        "created_at": iso(group.created_at),
        "updated_at": iso(group.updated_at),
    }


class GroupOut(GroupSummaryOut):
    """A group with its include and exclude lists (sorted); ``version`` is what ``If-Match`` (the ETag
    ``"<group_id>.<version>"``) and ``--if-version`` name."""

    include: list[str]
    exclude: list[str]

    @classmethod
    def of_view(cls, view: GroupView, **extra: Any) -> Self:
        return cls(
            **_summary(view.group), include=sorted(view.include), exclude=sorted(view.exclude), **extra
        )


class RefreshOut(BaseModel):
    """What a refresh changed: how many joined and left, and the member count after it."""

    joined: int
    left: int
    member_count: int = Field(description="After the refresh.")

    @classmethod
    def of(cls, result: RefreshResult, **extra: Any) -> Self:
        return cls(joined=result.joined, left=result.left, member_count=result.member_count, **extra)

    @classmethod
    def by_group(cls, results: Mapping[str, RefreshResult]) -> dict[str, RefreshOut]:
        """Each refreshed group's result, by group id."""
        return {group_id: RefreshOut.of(result) for group_id, result in sorted(results.items())}


class GroupChangedOut(GroupOut):
    refresh: RefreshOut | None = Field(
        description="The membership refresh the change caused; null if none (a frozen group, or only "
        "the name, description or enabled flag changed)."
    )

    @classmethod
    def of_change(cls, view: GroupView, result: RefreshResult | None) -> Self:
        return cls.of_view(view, refresh=None if result is None else RefreshOut.of(result))


class GroupRefreshOut(RefreshOut):
    group_id: str


class PreviewOut(RefreshOut):
    """What a refresh would change (nothing was written): counts, a sample of the ids (sorted) and the
    member count after it."""

    joined_ids: list[str] = Field(description="Up to ``sample`` of them, sorted.")
    left_ids: list[str] = Field(description="Up to ``sample`` of them, sorted.")

    @classmethod
    def of_preview(cls, result: RefreshResult) -> Self:
        return cls.of(result, joined_ids=list(result.joined_ids), left_ids=list(result.left_ids))


class MemberOut(BaseModel):
    """A member of a group, when it joined and why (``criteria`` or ``included``)."""

    user_id: str
    joined_at: Timestamp
    reason: str = Field(description="criteria or included.")

    @classmethod
    def of(cls, member: Member) -> Self:
        return cls(user_id=member.user_id, joined_at=iso(member.joined_at), reason=member.reason)


class MembersPageOut(BaseModel):
    members: list[MemberOut]
    next_after: str | None = Field(description="When the page is full: the ``after`` of the next page.")

    @classmethod
    def of(cls, found: Sequence[Member], limit: int) -> Self:
        return cls(
            members=[MemberOut.of(member) for member in found],
            next_after=found[-1].user_id if len(found) == limit else None,
        )


class MembershipChangeOut(BaseModel):
    """A join, a leave or a reason change of a group's history; ``id`` pages (``after``)."""

    id: int
    group_id: str
    user_id: str
    change: str = Field(
        description="joined, left, or reason: a member who stays for another reason (criteria to "
        "included when added to the include list, and back)."
    )
    at: Timestamp
    reason: str = Field(
        description="Of a join: criteria or included; of a leave: not-matched or excluded; of a reason "
        "change: the new reason. A linked group's: legacy-<trigger> (a member keeps the one it joined with)."
    )

    @classmethod
    def of(cls, change: MembershipChange) -> Self:
        return cls(
            id=change.id,
            group_id=change.group_id,
            user_id=change.user_id,
            change=change.change,
            at=iso(change.at),
            reason=change.reason,
        )


class HistoryPageOut(BaseModel):
    history: list[MembershipChangeOut]
    next_after: int | None = Field(description="When the page is full: the ``after`` of the next page.")

    @classmethod
    def of(cls, found: Sequence[MembershipChange], limit: int) -> Self:
        return cls(
            history=[MembershipChangeOut.of(change) for change in found],
            next_after=found[-1].id if len(found) == limit else None,
        )


EXPLAINED_EXAMPLE = {
    "type": "course_progress",
    "operator": "lt",
    "config": {"batch_id": "b1", "value": 30},
    "holds": False,
    "value": 33,
    "compared_to": 30,
}


class ExplainOut(BaseModel):
    """Why a user is or is not a member of a group."""

    group_id: str
    user_id: str
    member: bool = Field(description="The stored membership (a linked group's: as of its last refresh).")
    would_be_member: bool = Field(description="What an evaluation (a pull, for a linked group) decides now.")
    reason: str = Field(
        description="Of that decision: excluded, included, criteria, not-matched or unknown-user (not in "
        "the user directory); for a linked group legacy-member, not-in-legacy-group or unknown-user."
    )
    frozen: bool = Field(description="A frozen group's membership does not follow the decision.")
    criteria: dict[str, Any] | None = Field(
        description="The criteria tree with holds at every node ({and: [...], holds}, {or: [...], holds}, "
        "{not: ..., holds}); each criterion {type, operator, config, holds, value, compared_to} also "
        "shows the value it read of the user (null: the user has none, e.g. no active enrolment in the "
        "batch) and the value it compared that with (null when the operator compares with none: exists, "
        "never, is_staff; times are ISO 8601). A legacy criterion, and a plugin type that does not say, "
        "show holds only. Null for a group without criteria or a user unknown to the directory.",
        examples=[EXPLAINED_EXAMPLE],
    )


def masked_criteria(node: dict[str, Any], registry: CriteriaRegistry, *, pii: bool) -> dict[str, Any]:
    """An explained criteria tree with the profile values it read (personal data, as the user
    directory's profile) masked (``***``) unless ``pii`` (a principal with the ``pii`` grant); what they are compared with
    is the group's definition, and stays."""
    if pii:
        return node
    if "type" in node:
        kind = registry.types.get(str(node["type"]))
        if kind is not None and Fact.PROFILE in kind.facts and node.get("value") is not None:
            return {**node, "value": MASKED}
        return node
    for key in ("and", "or"):
        if key in node:
            return {**node, key: [masked_criteria(child, registry, pii=pii) for child in node[key]]}
    if "not" in node:
        return {**node, "not": masked_criteria(node["not"], registry, pii=pii)}
    return node


class MembersImportOut(BaseModel):
    """After a members import: the sizes of the group's new overrides, its version, and the refresh
    (null for a frozen group, whose membership is not changed)."""

    group_id: str
    version: int
    include: int = Field(description="The size of the include list after the import.")
    exclude: int = Field(description="The size of the exclude list after the import.")
    refresh: RefreshOut | None = Field(description="Null for a frozen group.")

    @classmethod
    def of(cls, view: GroupView, result: RefreshResult | None) -> Self:
        return cls(
            group_id=view.group.group_id,
            version=view.group.version,
            include=len(view.include),
            exclude=len(view.exclude),
            refresh=None if result is None else RefreshOut.of(result),
        )


def criteria_types_json(registry: CriteriaRegistry) -> list[dict[str, Any]]:
    """Every registered criterion type's schema (config JSON schema, operators, scopes, facts), in
    registration order: what a UI builds its forms from."""
    return [criterion_type.schema() for criterion_type in registry.types.values()]
