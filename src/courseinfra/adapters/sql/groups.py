"""SQL stores of user groups: definitions and overrides, membership by difference, the facts criteria read.

A refresh evaluates the group into a temporary table (one ``INSERT ... SELECT`` whose ``WHERE`` is the
compiled criteria tree, or the candidates narrowed in Python where a criterion has no SQL), then writes
the history of joins and leaves and applies them with four set-based statements. No user is loaded into
Python unless a criterion needs it, and then only the candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from courseinfra.adapters.sql.criteria import CriteriaCompiler, Predicate, in_list
from courseinfra.adapters.sql.store import aware, upsert
from courseinfra.adapters.sql.tables import (
    Timestamp,
    legacy_drift,
    legacy_echoes,
    user_activity_agg,
    user_enrolments,
    user_group_history,
    user_group_members,
    user_group_overrides,
    user_groups,
    users,
)
from courseinfra.adapters.sql.users import user_from_row
from courseinfra.domain.criteria import (
    CriteriaRegistry,
    EnrolmentFacts,
    EvaluationContext,
    MembershipRule,
    Scope,
    UserFacts,
    criteria_json,
)
from courseinfra.domain.groups import UserGroup
from courseinfra.services.groups.ports import (
    REASON_CHANGED,
    GroupFacts,
    Member,
    MembershipChange,
    Memberships,
    RefreshResult,
    UserGroupStore,
)
from courseinfra.services.unit_of_work import AlreadyExists

INCLUDE, EXCLUDE = "include", "exclude"
CANDIDATE_PAGE = 2000
TEMP = "tmp_group_evaluation"
# Declared once, so that SQLAlchemy caches the statements that use it (a new Table per refresh would
# compile every statement again). Created per connection by _temporary_table.
evaluation = sa.Table(
    TEMP,
    sa.MetaData(),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("reason", sa.String(64), nullable=False),
    prefixes=["TEMPORARY"],
)
COUNTED = {"preserve_rowcount": True}


def _group(row: sa.Row[Any], registry: CriteriaRegistry) -> UserGroup:
    scope = Scope.parse(row.scope)
    return UserGroup(
        group_id=row.group_id,
        name=row.name,
        scope=scope,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
        description=row.description,
        enabled=bool(row.enabled),
        frozen=bool(row.frozen),
        criteria=None if row.criteria is None else registry.parse(row.criteria, scope),
        version=row.version,
        member_count=row.member_count,
        last_refreshed_at=None if row.last_refreshed_at is None else aware(row.last_refreshed_at),
    )


def _values(group: UserGroup) -> dict[str, Any]:
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
        "last_refreshed_at": group.last_refreshed_at,
        "created_at": group.created_at,
        "updated_at": group.updated_at,
    }


class SqlUserGroupStore(UserGroupStore):
    def __init__(self, connection: sa.Connection, registry: CriteriaRegistry) -> None:
        self.connection = connection
        self.registry = registry

    def add(self, group: UserGroup) -> None:
        # ON CONFLICT DO NOTHING rather than a savepoint: pysqlite starts no transaction before the first
        # write, so a savepoint there would be the transaction itself, committed on release.
        inserted = self.connection.execute(
            upsert(self.connection, user_groups)
            .values(**_values(group))
            .on_conflict_do_nothing()
            .returning(user_groups.c.group_id)
        ).first()
        if inserted is None:
            raise AlreadyExists(
                f"a group with id {group.group_id} or named {group.name!r} in {group.scope} exists"
            )

    def get(self, group_id: str, *, for_update: bool = False) -> UserGroup | None:
        query = sa.select(user_groups).where(user_groups.c.group_id == group_id)
        if for_update:
            if self.connection.dialect.name == "postgresql":
                query = query.with_for_update()
            else:
                # SQLite locks the database, not rows: a write takes the lock until commit.
                self.connection.execute(
                    user_groups.update()
                    .where(user_groups.c.group_id == group_id)
                    .values(version=user_groups.c.version)
                )
        row = self.connection.execute(query).first()
        return None if row is None else _group(row, self.registry)

    def save(self, group: UserGroup) -> None:
        values = _values(group)
        del values["group_id"], values["created_at"]
        # The caller holds the group's lock; the name check is a read (no savepoint: see add).
        taken = self.connection.execute(
            sa.select(user_groups.c.group_id).where(
                user_groups.c.scope == values["scope"],
                user_groups.c.name == values["name"],
                user_groups.c.group_id != group.group_id,
            )
        ).first()
        if taken is not None:
            raise AlreadyExists(f"a group named {group.name!r} in {group.scope} exists")
        self.connection.execute(
            user_groups.update().where(user_groups.c.group_id == group.group_id).values(**values)
        )

    def record_refresh(self, group_id: str, member_count: int, at: datetime) -> None:
        self.connection.execute(
            user_groups.update()
            .where(user_groups.c.group_id == group_id)
            .values(member_count=member_count, last_refreshed_at=at)
        )

    def delete(self, group_id: str) -> bool:
        # The history goes too: a new group with the same id must not show the old one's joins and leaves.
        tables = (user_group_overrides, user_group_members, user_group_history, legacy_drift, legacy_echoes)
        for table in tables:
            self.connection.execute(table.delete().where(table.c.group_id == group_id))
        result = self.connection.execute(user_groups.delete().where(user_groups.c.group_id == group_id))
        return result.rowcount == 1

    def all(self) -> list[UserGroup]:
        rows = self.connection.execute(sa.select(user_groups).order_by(user_groups.c.group_id))
        return [_group(row, self.registry) for row in rows]

    def overrides(self, group_id: str) -> tuple[frozenset[str], frozenset[str]]:
        rows = self.connection.execute(
            sa.select(user_group_overrides.c.user_id, user_group_overrides.c.kind).where(
                user_group_overrides.c.group_id == group_id
            )
        ).all()
        return (
            frozenset(user for user, kind in rows if kind == INCLUDE),
            frozenset(user for user, kind in rows if kind == EXCLUDE),
        )

    def set_overrides(self, group_id: str, include: Sequence[str], exclude: Sequence[str]) -> None:
        self.connection.execute(
            user_group_overrides.delete().where(user_group_overrides.c.group_id == group_id)
        )
        excluded = set(exclude)
        rows = [{"group_id": group_id, "user_id": u, "kind": EXCLUDE} for u in sorted(excluded)]
        rows += [
            {"group_id": group_id, "user_id": u, "kind": INCLUDE} for u in sorted(set(include) - excluded)
        ]
        if rows:
            self.connection.execute(user_group_overrides.insert(), rows)


class SqlGroupFacts(GroupFacts):
    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def load(self, user_ids: Sequence[str]) -> dict[str, UserFacts]:
        facts: dict[str, UserFacts] = {}
        unique = sorted(set(user_ids))
        for start in range(0, len(unique), CANDIDATE_PAGE):
            facts.update(self._page(unique[start : start + CANDIDATE_PAGE]))
        return facts

    def _page(self, ids: list[str]) -> dict[str, UserFacts]:
        dialect = self.connection.dialect.name
        found = {
            row.user_id: user_from_row(row)
            for row in self.connection.execute(sa.select(users).where(in_list(users.c.user_id, ids, dialect)))
        }
        if not found:
            return {}
        e = user_enrolments.c
        enrolments: dict[str, list[EnrolmentFacts]] = {}
        for row in self.connection.execute(
            sa.select(
                e.userid,
                e.courseid,
                e.batchid,
                e.active,
                e.mode,
                e.enrolleddate,
                e.completionpercentage,
                e.contentstatus,
            ).where(in_list(e.userid, list(found), dialect))
        ):
            enrolments.setdefault(row.userid, []).append(
                EnrolmentFacts(
                    course_id=row.courseid,
                    batch_id=row.batchid,
                    active=bool(row.active),
                    mode=row.mode,
                    enrolled_on=aware(row.enrolleddate),
                    completion_percentage=row.completionpercentage,
                    content_status={key: int(value) for key, value in row.contentstatus.items()},
                )
            )
        a = user_activity_agg.c
        units: dict[str, dict[tuple[str, str], int]] = {}
        for user_id, unit_id, context_id, agg in self.connection.execute(
            sa.select(a.user_id, a.activity_id, a.context_id, a.agg).where(
                a.activity_type == "CourseUnit", in_list(a.user_id, list(found), dialect)
            )
        ):
            batch = context_id.removeprefix("cb:")
            units.setdefault(user_id, {})[(batch, unit_id)] = int(agg.get("progress", 0))
        return {
            user_id: UserFacts(user, tuple(enrolments.get(user_id, ())), units.get(user_id, {}))
            for user_id, user in found.items()
        }


class SqlMemberships(Memberships):
    def __init__(
        self,
        connection: sa.Connection,
        registry: CriteriaRegistry,
        compiler: CriteriaCompiler,
        facts: GroupFacts,
    ) -> None:
        self.connection = connection
        self.registry = registry
        self.compiler = compiler
        self.facts = facts

    # --- evaluation into the temporary table ------------------------------------------------------------

    def _temporary_table(self) -> sa.Table:
        if self.connection.dialect.name == "postgresql":
            # JIT compiling the evaluation costs more (about 0.2 s) than it saves on these queries.
            self.connection.exec_driver_sql("SET LOCAL jit = off")
            self.connection.exec_driver_sql(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {TEMP} "
                "(user_id varchar(255) PRIMARY KEY, reason varchar(64) NOT NULL) ON COMMIT DROP"
            )
        else:
            self.connection.exec_driver_sql(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {TEMP} (user_id TEXT PRIMARY KEY, reason TEXT NOT NULL)"
            )
        self.connection.execute(evaluation.delete())
        return evaluation

    def _admitted(
        self, rule: MembershipRule, context: EvaluationContext, only_users: Sequence[str] | None
    ) -> tuple[sa.Select[Any], bool]:
        """A query of (user_id, reason) of the users the rule admits (among ``only_users`` if given),
        reason ``included`` or ``criteria``; and whether it is exact (no criterion left to Python)."""
        dialect = self.connection.dialect.name
        included = in_list(users.c.user_id, rule.include, dialect)
        excluded = in_list(users.c.user_id, rule.exclude, dialect)
        scope: list[Predicate] = [sa.not_(excluded)]
        if only_users is not None:
            scope.append(in_list(users.c.user_id, only_users, dialect))
        reason = sa.case((included, sa.literal(rule.source or "included")), else_=sa.literal("criteria"))
        if rule.criteria is None:
            matched: Predicate = included
            exact = True
        else:
            criteria, exact = self.compiler.compile(rule.criteria, context, dialect)
            matched = sa.or_(included, criteria)
        return sa.select(users.c.user_id, reason.label("reason")).where(matched, *scope), exact

    def _decide(
        self, rule: MembershipRule, context: EvaluationContext, candidates: Sequence[str]
    ) -> dict[str, str]:
        """The Python evaluation of the candidates (a criterion has no SQL): admitted user to reason."""
        admitted: dict[str, str] = {}
        for start in range(0, len(candidates), CANDIDATE_PAGE):
            for user_id, facts in self.facts.load(candidates[start : start + CANDIDATE_PAGE]).items():
                member, why = rule.decide(self.registry, facts, context)
                if member:
                    admitted[user_id] = why
        return admitted

    def _evaluate(
        self, rule: MembershipRule, context: EvaluationContext, *, analyze: bool = True
    ) -> sa.Table:
        """Fill the temporary table with every user the rule admits, with the reason (``analyze``: with
        the statistics that a refresh's writes are planned with, on PostgreSQL)."""
        table = self._temporary_table()
        query, exact = self._admitted(rule, context, None)
        if exact:
            self.connection.execute(table.insert().from_select(["user_id", "reason"], query))
        else:
            candidates = self.connection.execute(query).scalars().all()
            rows = [
                {"user_id": u, "reason": why} for u, why in self._decide(rule, context, candidates).items()
            ]
            for start in range(0, len(rows), CANDIDATE_PAGE):
                self.connection.execute(table.insert(), rows[start : start + CANDIDATE_PAGE])
        if analyze and self.connection.dialect.name == "postgresql":
            # A fresh temporary table has no statistics: the planner would guess its size badly.
            self.connection.exec_driver_sql(f"ANALYZE {TEMP}")
        return table

    # --- the port -------------------------------------------------------------------------------------

    def refresh(
        self,
        group: UserGroup,
        rule: MembershipRule,
        context: EvaluationContext,
        *,
        reason: str,
        only_users: Sequence[str] | None = None,
    ) -> RefreshResult:
        if only_users is not None:
            return self._refresh_users(group, rule, context, sorted(set(only_users)))
        table = self._evaluate(rule, context)
        m, h, t = user_group_members, user_group_history, table
        gid = group.group_id
        at = sa.literal(context.now, Timestamp)
        dialect = self.connection.dialect.name
        is_member = sa.exists().where(m.c.group_id == gid, m.c.user_id == t.c.user_id)
        still_matched = sa.exists().where(t.c.user_id == m.c.user_id)
        leave_reason = sa.case(
            (in_list(m.c.user_id, rule.exclude, dialect), sa.literal("excluded")),
            else_=sa.literal(rule.source or "not-matched"),
        )
        history = ["group_id", "user_id", "change", "at", "reason"]
        # History first (joins, then leaves, then reason changes, each by user id), then the members:
        # both read the same difference between the members and the evaluation.
        joined = self.connection.execute(
            h.insert().from_select(
                history,
                sa.select(sa.literal(gid), t.c.user_id, sa.literal("joined"), at, t.c.reason)
                .where(sa.not_(is_member))
                .order_by(t.c.user_id),
            ),
            execution_options=COUNTED,
        ).rowcount
        left = self.connection.execute(
            h.insert().from_select(
                history,
                sa.select(sa.literal(gid), m.c.user_id, sa.literal("left"), at, leave_reason)
                .where(m.c.group_id == gid, sa.not_(still_matched))
                .order_by(m.c.user_id),
            ),
            execution_options=COUNTED,
        ).rowcount
        reasoned = 0
        if rule.source is None:
            # A member who stays for another reason (criteria to included, and back) keeps the row and
            # the time it joined; the new reason is stored and the change is in the history.
            new_reason = sa.select(t.c.reason).where(t.c.user_id == m.c.user_id).scalar_subquery()
            other_reason = sa.exists().where(t.c.user_id == m.c.user_id, t.c.reason != m.c.reason)
            reasoned = self.connection.execute(
                h.insert().from_select(
                    history,
                    sa.select(sa.literal(gid), m.c.user_id, sa.literal(REASON_CHANGED), at, t.c.reason)
                    .join(t, t.c.user_id == m.c.user_id)
                    .where(m.c.group_id == gid, t.c.reason != m.c.reason)
                    .order_by(m.c.user_id),
                ),
                execution_options=COUNTED,
            ).rowcount
            if reasoned:
                self.connection.execute(
                    m.update().where(m.c.group_id == gid, other_reason).values(reason=new_reason)
                )
        if left:
            self.connection.execute(m.delete().where(m.c.group_id == gid, sa.not_(still_matched)))
        if joined:
            self.connection.execute(
                m.insert().from_select(
                    ["group_id", "user_id", "joined_at", "reason"],
                    sa.select(sa.literal(gid), t.c.user_id, at, t.c.reason)
                    .where(sa.not_(is_member))
                    .order_by(t.c.user_id),
                )
            )
        count = self.connection.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
        return RefreshResult(joined=joined, left=left, member_count=int(count), reasons_changed=reasoned)

    def _refresh_users(
        self, group: UserGroup, rule: MembershipRule, context: EvaluationContext, user_ids: list[str]
    ) -> RefreshResult:
        """Refresh a few users (after an event): two reads and the few writes, no temporary table; the
        member count moves by the difference on the locked group."""
        dialect = self.connection.dialect.name
        m = user_group_members
        query, exact = self._admitted(rule, context, user_ids)
        rows = self.connection.execute(query).all()
        if exact:
            admitted = {row.user_id: row.reason for row in rows}
        else:
            admitted = self._decide(rule, context, [row.user_id for row in rows])
        current: dict[str, str] = {
            row.user_id: row.reason
            for row in self.connection.execute(
                sa.select(m.c.user_id, m.c.reason).where(
                    m.c.group_id == group.group_id, in_list(m.c.user_id, user_ids, dialect)
                )
            )
        }
        joins = sorted(set(admitted) - set(current))
        leaves = sorted(set(current) - set(admitted))
        # A pulled membership's reason is the pull's trigger, not a state: only rules' reasons change.
        reasoned = (
            []
            if rule.source is not None
            else sorted(u for u in set(current) & set(admitted) if current[u] != admitted[u])
        )
        gid, at = group.group_id, context.now
        by_reason: dict[str, list[str]] = {}
        for user_id in reasoned:
            by_reason.setdefault(admitted[user_id], []).append(user_id)
        for new_reason, changing in sorted(by_reason.items()):
            self.connection.execute(
                m.update()
                .where(m.c.group_id == gid, in_list(m.c.user_id, changing, dialect))
                .values(reason=new_reason)
            )
        if leaves:
            self.connection.execute(
                m.delete().where(m.c.group_id == gid, in_list(m.c.user_id, leaves, dialect))
            )
        if joins:
            self.connection.execute(
                m.insert(),
                [{"group_id": gid, "user_id": u, "joined_at": at, "reason": admitted[u]} for u in joins],
            )
        changes = (
            [
                {"group_id": gid, "user_id": u, "change": "joined", "at": at, "reason": admitted[u]}
                for u in joins
            ]
            + [
                {
                    "group_id": gid,
                    "user_id": u,
                    "change": "left",
                    "at": at,
                    "reason": "excluded" if u in rule.exclude else rule.source or "not-matched",
                }
                for u in leaves
            ]
            + [
                {"group_id": gid, "user_id": u, "change": REASON_CHANGED, "at": at, "reason": admitted[u]}
                for u in reasoned
            ]
        )
        if changes:
            self.connection.execute(user_group_history.insert(), changes)
        return RefreshResult(
            joined=len(joins),
            left=len(leaves),
            member_count=group.member_count + len(joins) - len(leaves),
            joined_ids=tuple(joins),
            left_ids=tuple(leaves),
            reasons_changed=len(reasoned),
        )

    def preview(
        self, group: UserGroup, rule: MembershipRule, context: EvaluationContext, *, sample: int = 100
    ) -> RefreshResult:
        # The evaluation is the cost (every candidate: ~0.2 s for 100,000 users); then one pass over it
        # counts the joins, the members' index counts the leaves, and a sample is read only when there
        # is something to list.
        table = self._evaluate(rule, context, analyze=False)
        m, t = user_group_members, table
        gid = group.group_id
        is_member = sa.exists().where(m.c.group_id == gid, m.c.user_id == t.c.user_id)
        # An outer join rather than a correlated EXISTS per row: PostgreSQL hashes it (3x faster).
        total, members_admitted = self.connection.execute(
            sa.select(sa.func.count(), sa.func.count(m.c.user_id)).select_from(
                t.outerjoin(m, sa.and_(m.c.group_id == gid, m.c.user_id == t.c.user_id))
            )
        ).one()
        # The admitted who are not members join; the members who are not admitted leave.
        members = self.connection.execute(sa.select(sa.func.count()).where(m.c.group_id == gid)).scalar_one()
        joined, left = total - members_admitted, members - members_admitted
        joins = sa.select(t.c.user_id).where(sa.not_(is_member)).order_by(t.c.user_id).limit(sample)
        leaves = (
            sa.select(m.c.user_id)
            .where(m.c.group_id == gid, sa.not_(sa.exists().where(t.c.user_id == m.c.user_id)))
            .order_by(m.c.user_id)
            .limit(sample)
        )
        return RefreshResult(
            joined=int(joined),
            left=int(left),
            member_count=int(total),
            joined_ids=tuple(self.connection.execute(joins).scalars()) if joined and sample else (),
            left_ids=tuple(self.connection.execute(leaves).scalars()) if left and sample else (),
        )

    def members(self, group_id: str, *, after: str = "", limit: int = 100) -> list[Member]:
        m = user_group_members.c
        rows = self.connection.execute(
            sa.select(m.user_id, m.joined_at, m.reason)
            .where(m.group_id == group_id, m.user_id > after)
            .order_by(m.user_id)
            .limit(limit)
        )
        return [Member(row.user_id, aware(row.joined_at), row.reason) for row in rows]

    def member_ids(self, group_id: str) -> set[str]:
        m = user_group_members.c
        return set(self.connection.execute(sa.select(m.user_id).where(m.group_id == group_id)).scalars())

    def history(
        self, group_id: str, *, user_id: str | None = None, after_id: int = 0, limit: int = 100
    ) -> list[MembershipChange]:
        h = user_group_history.c
        query = sa.select(user_group_history).where(h.group_id == group_id, h.id > after_id)
        if user_id is not None:
            query = query.where(h.user_id == user_id)
        rows = self.connection.execute(query.order_by(h.id).limit(limit))
        return [
            MembershipChange(row.id, row.group_id, row.user_id, row.change, aware(row.at), row.reason)
            for row in rows
        ]

    def is_member(self, group_id: str, user_id: str) -> bool:
        m = user_group_members.c
        return (
            self.connection.execute(
                sa.select(m.user_id).where(m.group_id == group_id, m.user_id == user_id)
            ).first()
            is not None
        )
