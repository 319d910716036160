"""User groups: definitions, merge patches, previews, members and history."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from courseinfra.entrypoints.schemas.common import InvalidBody, Timestamp
from courseinfra.services import groups

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


ScopeText = Annotated[
    str, Field(description="instance, organisation:<name> or course:<course id>.", examples=["instance"])
]


UserIds = Annotated[list[str], Field(description="User ids; the exclude list wins over everything.")]


class GroupDefinitionIn(BaseModel):
    """A group's whole definition (PUT replaces it: a missing optional field takes its default)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique in its scope.")
    scope: ScopeText
    description: str = ""
    enabled: bool = Field(True, description="A disabled group is refreshed only on demand.")
    frozen: bool = Field(False, description="A frozen group keeps its members: refreshes are refused.")
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
        description="1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit."
    )


class GroupPatchIn(BaseModel):
    """A JSON merge patch: only the fields present change. null resets a field to its default (no
    criteria, empty lists, an empty description, enabled, not frozen); name and scope cannot be null."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    scope: str | None = None
    description: str | None = None
    enabled: bool | None = None
    frozen: bool | None = None
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


class GroupOut(GroupSummaryOut):
    include: list[str]
    exclude: list[str]


class RefreshOut(BaseModel):
    joined: int
    left: int
    member_count: int = Field(description="After the refresh.")


class GroupChangedOut(GroupOut):
    refresh: RefreshOut | None = Field(
        description="The membership refresh the change caused; null if none (a frozen group, or only "
        "the name, description or enabled flag changed)."
    )


class GroupRefreshOut(RefreshOut):
    group_id: str


class PreviewOut(RefreshOut):
    joined_ids: list[str] = Field(description="Up to ``sample`` of them, sorted.")
    left_ids: list[str] = Field(description="Up to ``sample`` of them, sorted.")


class MemberOut(BaseModel):
    user_id: str
    joined_at: Timestamp
    reason: str = Field(description="criteria or included.")


class MembersPageOut(BaseModel):
    members: list[MemberOut]
    next_after: str | None = Field(description="When the page is full: the ``after`` of the next page.")


class MembershipChangeOut(BaseModel):
    id: int
    group_id: str
    user_id: str
    change: str = Field(description="joined or left.")
    at: Timestamp
    reason: str = Field(description="Of a join: criteria or included; of a leave: not-matched or excluded.")


class HistoryPageOut(BaseModel):
    history: list[MembershipChangeOut]
    next_after: int | None = Field(description="When the page is full: the ``after`` of the next page.")


class MembersImportOut(BaseModel):
    group_id: str
    version: int
    include: int = Field(description="The size of the include list after the import.")
    exclude: int = Field(description="The size of the exclude list after the import.")
    refresh: RefreshOut | None = Field(description="Null for a frozen group.")
