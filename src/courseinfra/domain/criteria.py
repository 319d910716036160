"""Group criteria: a tree of AND, OR and NOT over criteria ``{type, operator, config}``, the criterion
types and their plain Python evaluation.

The Python evaluation is the reference: the SQL compilers in ``adapters/sql/criteria.py`` must agree with
it on every user (a hypothesis property checks it), it evaluates criteria that have no SQL compiler (over
the candidates the rest of the tree leaves), and it explains one user's membership node by node.

A criterion type declares its pydantic config model, its operators, the scopes it supports and the facts
it depends on (:class:`Fact`), so that an event re-evaluates only the groups whose criteria it can change.
Plugins add types through the ``courseinfra.criteria`` entry point group (see ``bootstrap``).
"""

from __future__ import annotations

import abc
import enum
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from courseinfra.domain.errors import DomainError
from courseinfra.domain.users import User


class InvalidCriteria(DomainError):
    """A criteria tree that cannot be read, with the path of the first problem."""

    code = "invalid-criteria"


class ScopeKind(enum.StrEnum):
    INSTANCE = "instance"
    ORGANISATION = "organisation"
    COURSE = "course"


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a group lives: the whole instance, an organisation or a course (``key`` names it)."""

    kind: ScopeKind
    key: str = ""

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``instance``, ``organisation:<name>`` or ``course:<course id>``."""
        kind, _, key = text.partition(":")
        try:
            scope_kind = ScopeKind(kind.strip())
        except ValueError:
            raise InvalidCriteria(
                f"scope {text!r}: expected instance, organisation:<name> or course:<id>", code="invalid-scope"
            ) from None
        key = key.strip()
        if (scope_kind is ScopeKind.INSTANCE) != (key == ""):
            raise InvalidCriteria(f"scope {text!r}: only instance has no name", code="invalid-scope")
        return cls(scope_kind, key)

    def __str__(self) -> str:
        return self.kind.value if self.kind is ScopeKind.INSTANCE else f"{self.kind.value}:{self.key}"


class Fact(enum.StrEnum):
    """What a criterion reads; events name the facts they change."""

    DIRECTORY = "directory"  # staff flag, organisation
    PROFILE = "profile"
    LOGIN = "login"
    ENROLMENT = "enrolment"
    PROGRESS = "progress"
    MANUAL = "manual"


# --- the facts one user's evaluation reads -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnrolmentFacts:
    course_id: str
    batch_id: str
    active: bool
    mode: str
    enrolled_on: datetime
    completion_percentage: int
    content_status: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserFacts:
    """Everything the shipped criteria read of one user: the directory row, the enrolments and the
    unit progress (``(batch id, unit id)`` to percent) from the aggregator."""

    user: User
    enrolments: tuple[EnrolmentFacts, ...] = ()
    unit_progress: Mapping[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EvaluationContext:
    scope: Scope
    now: datetime


@dataclass(frozen=True, slots=True)
class Reading:
    """What a criterion read of one user and what it compared that with, for an explanation: ``value``
    is None when the user has nothing to read (no enrolment in the batch, no such profile field),
    ``compared_to`` when the operator compares with no value (``exists``, ``never``, ``is_staff``). Both
    are JSON values (times as ISO 8601 text)."""

    value: Any
    compared_to: Any = None


# --- the tree ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Criterion:
    type: str
    operator: str
    config: Mapping[str, Any]
    # The validated config; compared and hashed by the fields above only.
    model: BaseModel = field(compare=False, hash=False, repr=False)


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


Node = Criterion | AllOf | AnyOf | Not


def criteria_json(node: Node) -> dict[str, Any]:
    """The tree in the JSON form :meth:`CriteriaRegistry.parse` reads."""
    if isinstance(node, Criterion):
        return {"type": node.type, "operator": node.operator, "config": dict(node.config)}
    if isinstance(node, AllOf):
        return {"and": [criteria_json(child) for child in node.children]}
    if isinstance(node, AnyOf):
        return {"or": [criteria_json(child) for child in node.children]}
    return {"not": criteria_json(node.child)}


def leaves(node: Node) -> Iterator[Criterion]:
    if isinstance(node, Criterion):
        yield node
    elif isinstance(node, AllOf | AnyOf):
        for child in node.children:
            yield from leaves(child)
    else:
        yield from leaves(node.child)


# --- criterion types -----------------------------------------------------------------------------------


# Keys looked up inside JSON documents by SQL (profile fields, content ids): no quotes or backslashes,
# which JSON paths would have to escape.
SAFE_KEY = r'^[^"\\]+$'


class StrictConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CriterionType(abc.ABC):
    """A kind of criterion. Subclasses set the class attributes and :meth:`holds`."""

    name: ClassVar[str]
    description: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    operators: ClassVar[tuple[str, ...]]
    scopes: ClassVar[frozenset[ScopeKind]] = frozenset(ScopeKind)
    facts: ClassVar[frozenset[Fact]]
    #: A standalone type is a whole tree by itself: it cannot be combined with other criteria.
    standalone: ClassVar[bool] = False

    @abc.abstractmethod
    def holds(self, operator: str, config: Any, facts: UserFacts, context: EvaluationContext) -> bool:
        """Whether the criterion holds for the user of ``facts``."""

    def read(
        self, operator: str, config: Any, facts: UserFacts, context: EvaluationContext
    ) -> Reading | None:
        """What :meth:`holds` reads of the user and compares it with, for an explanation; None (the
        default, for a plugin that does not say) leaves both out of it."""
        return None

    def schema(self) -> dict[str, Any]:
        """What a UI needs to build a form: the config's JSON schema, the operators and the scopes."""
        return {
            "type": self.name,
            "description": self.description,
            "operators": list(self.operators),
            "scopes": sorted(scope.value for scope in self.scopes),
            "depends_on": sorted(fact.value for fact in self.facts),
            "config_schema": self.config_model.model_json_schema(),
        }


def _course_of(config_course: str | None, context: EvaluationContext, where: str) -> str:
    if config_course:
        return config_course
    if context.scope.kind is ScopeKind.COURSE:
        return context.scope.key
    raise InvalidCriteria(f"{where}: config.course_id is required outside a course scope")


class ManualConfig(StrictConfig):
    user_ids: list[str] = Field(description="The users, by id.", max_length=100_000)


class Manual(CriterionType):
    name = "manual"
    description = "A list of users."
    config_model = ManualConfig
    operators = ("in",)
    facts = frozenset({Fact.MANUAL})

    def holds(
        self, operator: str, config: ManualConfig, facts: UserFacts, context: EvaluationContext
    ) -> bool:
        return facts.user.user_id in set(config.user_ids)

    def read(
        self, operator: str, config: ManualConfig, facts: UserFacts, context: EvaluationContext
    ) -> Reading:
        # The list is the config's, beside the reading: not repeated (it may hold 100,000 ids).
        return Reading(facts.user.user_id)


class EnrolmentConfig(StrictConfig):
    course_id: str | None = Field(None, description="The course; default: the group's course scope.")
    modes: list[str] | None = Field(None, description="Only enrolments in one of these modes.")
    enrolled_from: date | None = Field(None, description="Enrolled on or after this day (UTC).")
    enrolled_until: date | None = Field(None, description="Enrolled on or before this day (UTC).")


def _active_enrolments(course: str, facts: UserFacts) -> list[EnrolmentFacts]:
    return [e for e in facts.enrolments if e.course_id == course and e.active]


def _enrolled(config: EnrolmentConfig, facts: UserFacts, context: EvaluationContext, where: str) -> bool:
    course = _course_of(config.course_id, context, where)
    for enrolment in facts.enrolments:
        if enrolment.course_id != course or not enrolment.active:
            continue
        if config.modes is not None and enrolment.mode not in config.modes:
            continue
        day = enrolment.enrolled_on.astimezone(UTC).date()
        if config.enrolled_from is not None and day < config.enrolled_from:
            continue
        if config.enrolled_until is not None and day > config.enrolled_until:
            continue
        return True
    return False


class CourseEnrolment(CriterionType):
    name = "course_enrolment"
    description = "Actively enrolled in a course (any batch), optionally by mode and enrolment date."
    config_model = EnrolmentConfig
    operators = ("is", "is_not")
    facts = frozenset({Fact.ENROLMENT})

    def holds(
        self, operator: str, config: EnrolmentConfig, facts: UserFacts, context: EvaluationContext
    ) -> bool:
        enrolled = _enrolled(config, facts, context, self.name)
        return enrolled if operator == "is" else not enrolled

    def read(
        self, operator: str, config: EnrolmentConfig, facts: UserFacts, context: EvaluationContext
    ) -> Reading:
        course = _course_of(config.course_id, context, self.name)
        found = [
            {
                "batch_id": e.batch_id,
                "mode": e.mode,
                "enrolled_on": e.enrolled_on.astimezone(UTC).date().isoformat(),
            }
            for e in sorted(_active_enrolments(course, facts), key=lambda e: e.batch_id)
        ]
        wanted = {**config.model_dump(mode="json", exclude_none=True), "course_id": course}
        return Reading(found or None, wanted)


class ModeConfig(StrictConfig):
    course_id: str | None = Field(None, description="The course; default: the group's course scope.")
    modes: list[str] = Field(min_length=1, description="Enrolment modes (audit, verified, ...).")


class EnrolmentMode(CriterionType):
    name = "enrolment_mode"
    description = "The mode (track) of the user's active enrolment in a course."
    config_model = ModeConfig
    operators = ("in", "not_in")
    facts = frozenset({Fact.ENROLMENT})

    def holds(self, operator: str, config: ModeConfig, facts: UserFacts, context: EvaluationContext) -> bool:
        course = _course_of(config.course_id, context, self.name)
        in_mode = any(e.course_id == course and e.active and e.mode in config.modes for e in facts.enrolments)
        return in_mode if operator == "in" else not in_mode

    def read(
        self, operator: str, config: ModeConfig, facts: UserFacts, context: EvaluationContext
    ) -> Reading:
        course = _course_of(config.course_id, context, self.name)
        modes = sorted({e.mode for e in _active_enrolments(course, facts)})
        return Reading(modes or None, list(config.modes))


class LastLoginConfig(StrictConfig):
    days: int = Field(0, ge=0, le=36_500, description="A number of days before now (ignored by never).")


class LastLogin(CriterionType):
    name = "last_login"
    description = (
        "When the user last logged in: within the last N days, not within them (or never), or never."
    )
    config_model = LastLoginConfig
    operators = ("within_days", "not_within_days", "never")
    facts = frozenset({Fact.LOGIN})

    def holds(
        self, operator: str, config: LastLoginConfig, facts: UserFacts, context: EvaluationContext
    ) -> bool:
        last = facts.user.last_login_at
        if operator == "never":
            return last is None
        recent = last is not None and last >= context.now - timedelta(days=config.days)
        return recent if operator == "within_days" else not recent

    def read(
        self, operator: str, config: LastLoginConfig, facts: UserFacts, context: EvaluationContext
    ) -> Reading:
        last = facts.user.last_login_at
        since = None if operator == "never" else (context.now - timedelta(days=config.days)).isoformat()
        return Reading(None if last is None else last.isoformat(), since)


class StaffConfig(StrictConfig):
    pass


class StaffStatus(CriterionType):
    name = "staff_status"
    description = "Whether the user is staff."
    config_model = StaffConfig
    operators = ("is_staff", "is_not_staff")
    facts = frozenset({Fact.DIRECTORY})

    def holds(self, operator: str, config: StaffConfig, facts: UserFacts, context: EvaluationContext) -> bool:
        return facts.user.is_staff == (operator == "is_staff")

    def read(
        self, operator: str, config: StaffConfig, facts: UserFacts, context: EvaluationContext
    ) -> Reading:
        return Reading(facts.user.is_staff)


class ProfileConfig(StrictConfig):
    field: str = Field(
        min_length=1,
        max_length=255,
        pattern=SAFE_KEY,
        description="A profile field name (no quotes or backslashes).",
    )
    value: str | None = Field(None, description="For equals.")
    values: list[str] | None = Field(None, description="For in.")


class ProfileField(CriterionType):
    name = "profile_field"
    description = "A field of the user's profile: equals a value, is one of values, or exists."
    config_model = ProfileConfig
    operators = ("equals", "in", "exists")
    facts = frozenset({Fact.PROFILE})

    def holds(
        self, operator: str, config: ProfileConfig, facts: UserFacts, context: EvaluationContext
    ) -> bool:
        value = facts.user.profile.get(config.field)
        if operator == "exists":
            return value is not None
        if operator == "equals":
            return value is not None and value == config.value
        return value is not None and value in (config.values or ())

    def read(
        self, operator: str, config: ProfileConfig, facts: UserFacts, context: EvaluationContext
    ) -> Reading:
        compared = {"equals": config.value, "in": config.values, "exists": None}[operator]
        return Reading(facts.user.profile.get(config.field), compared)


class ProgressConfig(StrictConfig):
    batch_id: str = Field(min_length=1, description="The batch whose course progress is compared.")
    value: int = Field(ge=0, le=100, description="A percentage.")


COMPARISONS: dict[str, Any] = {
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "eq": lambda a, b: a == b,
}


class CourseProgress(CriterionType):
    name = "course_progress"
    description = (
        "The completion percentage of the user's active enrolment in a batch, compared with a number."
    )
    config_model = ProgressConfig
    operators = tuple(COMPARISONS)
    facts = frozenset({Fact.PROGRESS, Fact.ENROLMENT})

    def holds(
        self, operator: str, config: ProgressConfig, facts: UserFacts, context: EvaluationContext
    ) -> bool:
        compare = COMPARISONS[operator]
        return any(
            e.batch_id == config.batch_id and e.active and compare(e.completion_percentage, config.value)
            for e in facts.enrolments
        )

    def read(
        self, operator: str, config: ProgressConfig, facts: UserFacts, context: EvaluationContext
    ) -> Reading:
        # A learner has one enrolment per batch; an inactive one is not compared, so it reads nothing.
        found = [
            e.completion_percentage for e in facts.enrolments if e.batch_id == config.batch_id and e.active
        ]
        return Reading(found[0] if found else None, config.value)


class CompletionConfig(StrictConfig):
    batch_id: str = Field(min_length=1, description="The batch in which the content was completed.")
    kind: Literal["content", "unit"] = Field("content", description="A leaf content, or a course unit.")
    content_id: str = Field(
        min_length=1, max_length=255, pattern=SAFE_KEY, description="The content or unit id."
    )


class ContentCompletion(CriterionType):
    name = "content_completion"
    description = "Completed a given content (status 2) or course unit (all its leaves) in a batch."
    config_model = CompletionConfig
    operators = ("completed", "not_completed")
    facts = frozenset({Fact.PROGRESS})

    def holds(
        self, operator: str, config: CompletionConfig, facts: UserFacts, context: EvaluationContext
    ) -> bool:
        if config.kind == "unit":
            done = facts.unit_progress.get((config.batch_id, config.content_id), 0) >= 100
        else:
            done = any(
                e.batch_id == config.batch_id and e.content_status.get(config.content_id, 0) >= 2
                for e in facts.enrolments
            )
        return done if operator == "completed" else not done

    def read(
        self, operator: str, config: CompletionConfig, facts: UserFacts, context: EvaluationContext
    ) -> Reading:
        """A unit's progress percentage against 100, or a content's status against 2 (completed)."""
        if config.kind == "unit":
            return Reading(facts.unit_progress.get((config.batch_id, config.content_id)), 100)
        statuses = [
            e.content_status[config.content_id]
            for e in facts.enrolments
            if e.batch_id == config.batch_id and config.content_id in e.content_status
        ]
        return Reading(max(statuses) if statuses else None, 2)


SHIPPED_TYPES: tuple[CriterionType, ...] = (
    Manual(),
    CourseEnrolment(),
    EnrolmentMode(),
    LastLogin(),
    StaffStatus(),
    ProfileField(),
    CourseProgress(),
    ContentCompletion(),
)


PARSED_CACHE = 1024


class CriteriaRegistry:
    """The criterion types by name; parses and evaluates trees."""

    def __init__(self, types: Iterable[CriterionType] = SHIPPED_TYPES) -> None:
        self.types: dict[str, CriterionType] = {}
        self._parsed: dict[tuple[str, Scope, str], Node] = {}
        for criterion_type in types:
            self.register(criterion_type)

    def register(self, criterion_type: CriterionType) -> None:
        if criterion_type.name in self.types:
            raise ValueError(f"criterion type {criterion_type.name!r} is registered twice")
        self.types[criterion_type.name] = criterion_type
        self._parsed.clear()

    def parse(self, document: Any, scope: Scope, path: str = "criteria") -> Node:
        """Read and validate a tree: every criterion's type must exist, support the scope and the
        operator, and its config must validate; a standalone type must be the whole tree. Raises
        :class:`InvalidCriteria` naming the path."""
        try:
            key = (json.dumps(document, sort_keys=True), scope, path)
        except (TypeError, ValueError):
            key = None
        if key is not None and key in self._parsed:
            return self._parsed[key]
        node = self._parse(document, scope, path)
        if not isinstance(node, Criterion):
            for leaf in leaves(node):
                if self.types[leaf.type].standalone:
                    raise InvalidCriteria(f"{path}: a {leaf.type} criterion cannot be combined with others")
        if key is not None:
            # Trees are immutable: a stored group's criteria, read on every refresh, is parsed once.
            if len(self._parsed) >= PARSED_CACHE:
                self._parsed.clear()
            self._parsed[key] = node
        return node

    def _parse(self, document: Any, scope: Scope, path: str) -> Node:
        if not isinstance(document, Mapping):
            raise InvalidCriteria(f"{path}: expected an object, got {type(document).__name__}")
        keys = set(document)
        for combinator, kind in (("and", AllOf), ("or", AnyOf)):
            if keys == {combinator}:
                children = document[combinator]
                if not isinstance(children, list) or not children:
                    raise InvalidCriteria(f"{path}.{combinator}: expected a non-empty list")
                return kind(
                    tuple(
                        self._parse(child, scope, f"{path}.{combinator}[{i}]")
                        for i, child in enumerate(children)
                    )
                )
        if keys == {"not"}:
            return Not(self._parse(document["not"], scope, f"{path}.not"))
        if "type" not in keys or not keys <= {"type", "operator", "config"}:
            raise InvalidCriteria(
                f"{path}: expected {{and: [...]}}, {{or: [...]}}, {{not: ...}} or {{type, operator, config}}"
            )
        name = document["type"]
        criterion_type = self.types.get(name) if isinstance(name, str) else None
        if criterion_type is None:
            known = ", ".join(sorted(self.types))
            raise InvalidCriteria(f"{path}.type: unknown criterion type {name!r} (known: {known})")
        operator = document.get("operator", criterion_type.operators[0])
        if operator not in criterion_type.operators:
            raise InvalidCriteria(
                f"{path}.operator: {criterion_type.name} takes {', '.join(criterion_type.operators)}, not {operator!r}"
            )
        if scope.kind not in criterion_type.scopes:
            raise InvalidCriteria(
                f"{path}: {criterion_type.name} is not available in a {scope.kind.value} scope"
            )
        config = document.get("config", {})
        try:
            model = criterion_type.config_model.model_validate(config)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InvalidCriteria(f"{path}.config{'.' + where if where else ''}: {first['msg']}") from None
        node = Criterion(
            criterion_type.name, operator, model.model_dump(mode="json", exclude_none=True), model
        )
        self._check(node, scope, path)
        return node

    def _check(self, node: Criterion, scope: Scope, path: str) -> None:
        config = node.model
        if (
            isinstance(config, EnrolmentConfig | ModeConfig)
            and not config.course_id
            and scope.kind is not ScopeKind.COURSE
        ):
            raise InvalidCriteria(f"{path}.config.course_id: required outside a course scope")
        if isinstance(config, ProfileConfig):
            if node.operator == "equals" and config.value is None:
                raise InvalidCriteria(f"{path}.config.value: required by equals")
            if node.operator == "in" and not config.values:
                raise InvalidCriteria(f"{path}.config.values: required by in")

    def facts_of(self, node: Node) -> frozenset[Fact]:
        """Every fact the tree reads."""
        return frozenset(fact for leaf in leaves(node) for fact in self.types[leaf.type].facts)

    def holds(self, node: Node, facts: UserFacts, context: EvaluationContext) -> bool:
        if isinstance(node, Criterion):
            return self.types[node.type].holds(node.operator, node.model, facts, context)
        if isinstance(node, AllOf):
            return all(self.holds(child, facts, context) for child in node.children)
        if isinstance(node, AnyOf):
            return any(self.holds(child, facts, context) for child in node.children)
        return not self.holds(node.child, facts, context)

    def explain(self, node: Node, facts: UserFacts, context: EvaluationContext) -> dict[str, Any]:
        """The tree with ``holds`` at every node: why a user is, or is not, matched. A criterion also
        has ``value`` (what it read of the user, null if nothing) and ``compared_to`` (see
        :class:`Reading`), unless its type does not say."""
        if isinstance(node, Criterion):
            explained = {**criteria_json(node), "holds": self.holds(node, facts, context)}
            reading = self.types[node.type].read(node.operator, node.model, facts, context)
            if reading is not None:
                explained.update(value=reading.value, compared_to=reading.compared_to)
            return explained
        if isinstance(node, AllOf | AnyOf):
            children = [self.explain(child, facts, context) for child in node.children]
            combined = all if isinstance(node, AllOf) else any
            key = "and" if isinstance(node, AllOf) else "or"
            return {key: children, "holds": combined(child["holds"] for child in children)}
        inner = self.explain(node.child, facts, context)
        return {"not": inner, "holds": not inner["holds"]}


@dataclass(frozen=True, slots=True)
class MembershipRule:
    """Who belongs: users the criteria match, plus the include list, minus the exclude list (the
    overrides win over the rules). A group without criteria has only its include list."""

    criteria: Node | None
    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()
    #: The reason written for every join and leave when membership comes from elsewhere (a legacy
    #: group's members, pulled): ``legacy-pull``, ``legacy-move``, ...
    source: str | None = None

    def decide(
        self, registry: CriteriaRegistry, facts: UserFacts, context: EvaluationContext
    ) -> tuple[bool, str]:
        """Whether the user belongs, and the reason: excluded, included, criteria or not-matched."""
        user_id = facts.user.user_id
        if user_id in self.exclude:
            return False, "excluded"
        if user_id in self.include:
            return True, "included"
        if self.criteria is not None and registry.holds(self.criteria, facts, context):
            return True, "criteria"
        return False, "not-matched"


def diff(current: Iterable[str], target: Iterable[str]) -> tuple[list[str], list[str]]:
    """(joins, leaves) that turn ``current`` into ``target``, each sorted."""
    now, then = set(current), set(target)
    return sorted(then - now), sorted(now - then)


def normalise_user_ids(values: Sequence[str]) -> list[str]:
    return sorted({value.strip() for value in values if value and value.strip()})
