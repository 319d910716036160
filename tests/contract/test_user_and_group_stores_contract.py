"""One contract for the user directory and the user-group stores (definitions, memberships, the facts
criteria read), on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from courseinfra.adapters.sql.criteria import CriteriaCompiler
from courseinfra.adapters.sql.uow import SqlUnitOfWork
from courseinfra.domain.criteria import (
    CriteriaRegistry,
    EnrolmentFacts,
    EvaluationContext,
    MembershipRule,
    Scope,
)
from courseinfra.domain.enrolments import Enrolment
from courseinfra.domain.groups import UserGroup
from courseinfra.domain.progress import EnrolmentKey, EnrolmentState, UnitMetrics
from courseinfra.domain.users import User, UsernameTaken
from courseinfra.services.groups.ports import Member, RefreshResult
from courseinfra.services.unit_of_work import AlreadyExists
from tests.support.stores import OnPostgres, OnSqlite

T0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
T2 = T0 + timedelta(days=2)
INDIA = timezone(timedelta(hours=5, minutes=30))
REGISTRY = CriteriaRegistry()
NORTH = {"type": "profile_field", "operator": "equals", "config": {"field": "district", "value": "north"}}
RECENT = {"type": "last_login", "operator": "within_days", "config": {"days": 7}}


def assert_utc(*values: datetime | None) -> None:
    """Stored times come back aware and in UTC, whatever the database."""
    for value in values:
        assert value is not None
        assert value.utcoffset() == timedelta(0)


def group(
    group_id: str,
    name: str | None = None,
    *,
    scope: str = "instance",
    criteria: dict[str, Any] | None = None,
    at: datetime = T0,
    **fields: Any,
) -> UserGroup:
    parsed = Scope.parse(scope)
    return UserGroup(
        group_id=group_id,
        name=name or f"Group {group_id}",
        scope=parsed,
        created_at=at,
        updated_at=at,
        criteria=None if criteria is None else REGISTRY.parse(criteria, parsed),
        **fields,
    )


def refresh(
    uow: SqlUnitOfWork, group_id: str, at: datetime, *, only_users: Sequence[str] | None = None
) -> RefreshResult:
    """Refresh a stored group with its overrides, as the handlers do, and keep the outcome on it."""
    stored = uow.groups.get(group_id, for_update=True)
    assert stored is not None
    include, exclude = uow.groups.overrides(group_id)
    result = uow.memberships.refresh(
        stored,
        MembershipRule(stored.criteria, include, exclude),
        EvaluationContext(stored.scope, at),
        reason="on-demand",
        only_users=only_users,
    )
    uow.groups.record_refresh(group_id, result.member_count, at)
    return result


def people(engine: sa.Engine) -> None:
    """a1, a2, a4 in the north (a4 excluded by the ``north`` group), a3 in the south, a5 staff
    without a district (included by the ``north`` group)."""
    with SqlUnitOfWork(engine) as uow:
        districts = (("a1", "north"), ("a2", "north"), ("a3", "south"), ("a4", "north"))
        users = [User(u, profile={"district": d}) for u, d in districts]
        uow.users.upsert_many([*users, User("a5", is_staff=True)], T0)
        uow.groups.add(group("north", criteria=NORTH))
        uow.groups.set_overrides("north", ["a5"], ["a4"])
        uow.commit()


class UserDirectoryContract:
    """Subclasses (every contract here) provide the ``engine`` fixture, migrated and empty."""

    def test_upsert_counts_inserts_and_updates_and_skips_unchanged_users(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            assert uow.users.upsert_many([User("a", name="Ann"), User("b", name="Ben")], T0) == (2, 0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            # a as stored: neither; b changed: updated; c: inserted.
            batch = [User("a", name="Ann"), User("b", name="Benedict"), User("c")]
            assert uow.users.upsert_many(batch, T1) == (1, 1)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            found = uow.users.get_many(["a", "b", "c"])
        assert (found["a"].created_at, found["a"].updated_at) == (T0, T0)
        assert (found["b"].name, found["b"].created_at, found["b"].updated_at) == ("Benedict", T0, T1)
        assert (found["c"].created_at, found["c"].updated_at) == (T1, T1)

    def test_upsert_never_moves_a_login_back(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many([User("a", last_login_at=T2)], T0)
            # An older login, then none at all: the stored one stays.
            uow.users.upsert_many([User("a", last_login_at=T1)], T1)
            uow.users.upsert_many([User("a")], T1)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            stored = uow.users.get("a")
            assert stored is not None
            assert stored.last_login_at == T2
            later = T2 + timedelta(hours=1)
            assert uow.users.upsert_many([User("a", last_login_at=later)], T2) == (0, 1)
            moved = uow.users.get("a")
        assert moved is not None
        assert moved.last_login_at == later
        assert moved.created_at == T0

    def test_a_username_taken_refuses_the_whole_batch(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many([User("a", username="x")], T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            with pytest.raises(UsernameTaken) as taken:
                uow.users.upsert_many([User("new"), User("b", username="x")], T1)
            assert taken.value.conflicts == {"b": ("x", "a")}
            # Given to two users of one batch: refused too.
            with pytest.raises(UsernameTaken):
                uow.users.upsert_many([User("new"), User("c", username="z"), User("d", username="z")], T1)
            # Nothing was written, not even the batches' harmless user.
            assert [u.user_id for u in uow.users.list()] == ["a"]

    def test_usernames_swapped_within_a_batch_are_fine(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many([User("a", username="x"), User("b", username="y")], T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert uow.users.upsert_many([User("a", username="y"), User("b", username="x")], T1) == (0, 2)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            found = uow.users.get_many(["a", "b"])
        assert (found["a"].username, found["b"].username) == ("y", "x")

    def test_a_username_given_up_in_a_batch_can_be_taken_in_it(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many([User("a", username="x")], T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            # a drops x and b (new) takes it: a moved username, not a taken one.
            assert uow.users.upsert_many([User("a"), User("b", username="x")], T1) == (1, 1)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            found = uow.users.get_many(["a", "b"])
        assert (found["a"].username, found["a"].updated_at, found["b"].username) == (None, T1, "x")

    def test_a_user_round_trips_with_aware_utc_times(self, engine: sa.Engine) -> None:
        # Given in another zone: the same instants come back, in UTC.
        login = datetime(2026, 1, 2, 14, 30, 15, 123456, tzinfo=INDIA)
        user = User(
            "a",
            username="ann",
            email="ann@example.org",
            name="Ann",
            organisation="org1",
            last_login_at=login,
            is_staff=True,
            profile={"lang": "en", "district": "north"},
        )
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many([user], T0.astimezone(INDIA))
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            stored = uow.users.get("a")
            assert uow.users.get("nobody") is None
            # Unknown ids are left out; a repeated one is found once.
            assert set(uow.users.get_many(["a", "nobody", "a"])) == {"a"}
        assert stored == replace(user, created_at=T0, updated_at=T0)
        assert_utc(stored.last_login_at, stored.created_at, stored.updated_at)

    def test_list_pages_by_ascending_id_within_an_organisation(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many(
                [User(u, organisation=o) for u, o in (("d", "x"), ("b", "y"), ("a", "x"), ("c", "x"))], T0
            )
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert [u.user_id for u in uow.users.list()] == ["a", "b", "c", "d"]
            assert [u.user_id for u in uow.users.list(after="a", limit=1)] == ["b"]
            assert uow.users.list(after="d") == []
            assert [u.user_id for u in uow.users.list(organisation="x")] == ["a", "c", "d"]
            # The limit counts the organisation's users, not every user.
            assert [u.user_id for u in uow.users.list(after="a", limit=1, organisation="x")] == ["c"]
            assert uow.users.count() == 4

    def test_a_login_only_moves_forward(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many([User("a")], T0)
            assert not uow.users.record_login("nobody", T1)
            assert uow.users.record_login("a", T1)
            assert not uow.users.record_login("a", T1)  # at the recorded one
            assert not uow.users.record_login("a", T0)  # before it
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            stored = uow.users.get("a")
        assert stored is not None
        assert stored.last_login_at == T1
        assert stored.updated_at == T0  # a login is not a change of the user

    def test_logins_are_compared_in_utc_whatever_their_zone(self, engine: sa.Engine) -> None:
        recorded = datetime(2026, 1, 1, 10, tzinfo=UTC)
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many([User("a", last_login_at=recorded)], T0)
            # 14:00 in India is 08:30 UTC: earlier, though its wall clock reads later.
            assert not uow.users.record_login("a", datetime(2026, 1, 1, 14, tzinfo=INDIA))
            assert uow.users.record_login("a", datetime(2026, 1, 1, 16, tzinfo=INDIA))
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            stored = uow.users.get("a")
        assert stored is not None
        assert stored.last_login_at == datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
        assert_utc(stored.last_login_at)

    def test_a_profile_update_merges_and_none_removes(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many([User("a", name="Ann", profile={"lang": "en", "district": "north"})], T0)
            assert uow.users.update_profile("nobody", {"lang": "fr"}, T1) is None
            updated = uow.users.update_profile("a", {"district": None, "grade": "5"}, T1)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            stored = uow.users.get("a")
        assert stored is not None
        assert dict(stored.profile) == {"lang": "en", "grade": "5"}
        assert (stored.name, stored.created_at, stored.updated_at) == ("Ann", T0, T1)
        assert updated == stored  # the user as stored after the update

    def test_a_profile_update_that_changes_nothing_keeps_updated_at(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many([User("a", profile={"lang": "en"})], T0)
            # The same value, and the removal of a field it does not have.
            same = uow.users.update_profile("a", {"lang": "en", "grade": None}, T1)
            uow.commit()
        assert same is not None
        assert (dict(same.profile), same.updated_at) == ({"lang": "en"}, T0)
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.users.get("a") == same

    def test_leaving_without_commit_rolls_the_directory_back(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many([User("a")], T0)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many([User("b")], T1)
            uow.users.record_login("a", T1)
            uow.users.update_profile("a", {"lang": "en"}, T1)
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.users.count() == 1
            assert uow.users.get("a") == User("a", created_at=T0, updated_at=T0)


class UserGroupStoreContract:
    def test_a_group_round_trips_with_aware_utc_times(self, engine: sa.Engine) -> None:
        stored_group = group(
            "g1",
            "Readers",
            scope="course:c1",
            criteria={"and": [NORTH, {"not": RECENT}]},
            description="who reads",
            enabled=False,
            at=datetime(2026, 1, 1, 9, 0, 0, 654321, tzinfo=UTC),
        )
        with SqlUnitOfWork(engine) as uow:
            uow.groups.add(stored_group)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            found = uow.groups.get("g1")
            assert uow.groups.get("nope") is None
        assert found == stored_group
        assert found.last_refreshed_at is None
        assert_utc(found.created_at, found.updated_at)

    def test_add_refuses_a_taken_id_or_a_taken_name_in_its_scope(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.groups.add(group("g2", "Same"))
            with pytest.raises(AlreadyExists):
                uow.groups.add(group("g2", "Another name"))
            with pytest.raises(AlreadyExists):
                uow.groups.add(group("g3", "Same"))
            # The same name in another scope is another group; the refusals left the transaction usable.
            uow.groups.add(group("g1", "Same", scope="organisation:org1"))
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            everything = uow.groups.all()
        assert [(g.group_id, g.name, str(g.scope)) for g in everything] == [
            ("g1", "Same", "organisation:org1"),
            ("g2", "Same", "instance"),
        ]

    def test_save_replaces_the_definition(self, engine: sa.Engine) -> None:
        first = group("g1", "First", criteria=NORTH)
        with SqlUnitOfWork(engine) as uow:
            uow.groups.add(first)
            uow.commit()
        changed = first.changed(T1, name="Renamed", criteria=None, frozen=True, description="now manual")
        with SqlUnitOfWork(engine) as uow:
            uow.groups.save(changed)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            found = uow.groups.get("g1")
        assert found == changed
        assert (found.version, found.created_at, found.updated_at) == (2, T0, T1)

    def test_a_refresh_is_kept_on_the_group_without_a_new_version(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.groups.add(group("g1"))
            uow.groups.record_refresh("g1", 7, T1)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            found = uow.groups.get("g1")
        assert found is not None
        assert (found.member_count, found.last_refreshed_at, found.version) == (7, T1, 1)
        assert found.updated_at == T0  # the definition did not change
        assert_utc(found.last_refreshed_at)

    def test_overrides_replace_both_lists_and_exclusion_wins(self, engine: sa.Engine) -> None:
        with SqlUnitOfWork(engine) as uow:
            uow.groups.add(group("g1"))
            assert uow.groups.overrides("g1") == (frozenset(), frozenset())
            uow.groups.set_overrides("g1", ["a", "b"], ["c"])
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert uow.groups.overrides("g1") == ({"a", "b"}, {"c"})
            uow.groups.set_overrides("g1", ["d", "e"], ["e"])
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.groups.overrides("g1") == ({"d"}, {"e"})

    def test_delete_takes_the_overrides_members_and_history_of_that_group_only(
        self, engine: sa.Engine
    ) -> None:
        people(engine)
        with SqlUnitOfWork(engine) as uow:
            uow.groups.add(group("other", criteria=NORTH))
            uow.groups.set_overrides("other", ["a3"], [])
            refresh(uow, "north", T1)
            refresh(uow, "other", T1)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            assert uow.groups.delete("north")
            assert not uow.groups.delete("north")
            assert not uow.groups.delete("never")
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.groups.get("north") is None
            assert uow.groups.overrides("north") == (frozenset(), frozenset())
            assert uow.memberships.members("north") == []
            assert uow.memberships.history("north") == []
            assert [g.group_id for g in uow.groups.all()] == ["other"]
            assert uow.groups.overrides("other") == ({"a3"}, frozenset())
            assert [m.user_id for m in uow.memberships.members("other")] == ["a1", "a2", "a3", "a4"]
            assert len(uow.memberships.history("other")) == 4


class MembershipsContract:
    def test_a_refresh_writes_the_joins_with_their_reasons(self, engine: sa.Engine) -> None:
        people(engine)
        with SqlUnitOfWork(engine) as uow:
            result = refresh(uow, "north", T1)
            uow.commit()
        assert (result.joined, result.left, result.member_count) == (3, 0, 3)
        with SqlUnitOfWork(engine).reading() as uow:
            members = uow.memberships.members("north")
            history = uow.memberships.history("north")
        # a4 matches but is excluded; a5 does not match but is included.
        assert members == [
            Member("a1", T1, "criteria"),
            Member("a2", T1, "criteria"),
            Member("a5", T1, "included"),
        ]
        assert [(c.group_id, c.user_id, c.change, c.at, c.reason) for c in history] == [
            ("north", "a1", "joined", T1, "criteria"),
            ("north", "a2", "joined", T1, "criteria"),
            ("north", "a5", "joined", T1, "included"),
        ]
        assert_utc(*(m.joined_at for m in members), *(c.at for c in history))

    def test_a_refresh_applies_only_the_difference(self, engine: sa.Engine) -> None:
        people(engine)
        with SqlUnitOfWork(engine) as uow:
            refresh(uow, "north", T1)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            uow.users.update_profile("a2", {"district": "south"}, T2)
            uow.users.update_profile("a3", {"district": "north"}, T2)
            uow.groups.set_overrides("north", ["a5"], ["a4", "a1"])
            result = refresh(uow, "north", T2)
            uow.commit()
        assert (result.joined, result.left, result.member_count) == (1, 2, 2)
        with SqlUnitOfWork(engine).reading() as uow:
            members = uow.memberships.members("north")
            second = [c for c in uow.memberships.history("north") if c.at == T2]
        # a5 stayed: its row, with the time it joined, is untouched.
        assert members == [Member("a3", T2, "criteria"), Member("a5", T1, "included")]
        assert sorted((c.user_id, c.change, c.reason) for c in second) == [
            ("a1", "left", "excluded"),
            ("a2", "left", "not-matched"),
            ("a3", "joined", "criteria"),
        ]

    def test_a_refresh_of_an_unchanged_membership_writes_nothing(self, engine: sa.Engine) -> None:
        people(engine)
        with SqlUnitOfWork(engine) as uow:
            refresh(uow, "north", T1)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            result = refresh(uow, "north", T2)
            uow.commit()
        assert (result.joined, result.left, result.member_count) == (0, 0, 3)
        with SqlUnitOfWork(engine).reading() as uow:
            assert len(uow.memberships.history("north")) == 3
            assert {m.joined_at for m in uow.memberships.members("north")} == {T1}

    def test_a_refresh_counts_who_joined_and_who_left(self, engine: sa.Engine) -> None:
        people(engine)
        with SqlUnitOfWork(engine) as uow:
            joined = refresh(uow, "north", T1)
            uow.groups.set_overrides("north", [], ["a4", "a5"])
            left = refresh(uow, "north", T2)
        assert (joined.joined, joined.left, joined.member_count) == (3, 0, 3)
        assert (left.joined, left.left, left.member_count) == (0, 1, 2)

    def test_a_refresh_of_some_users_leaves_the_others_alone(self, engine: sa.Engine) -> None:
        people(engine)
        with SqlUnitOfWork(engine) as uow:
            refresh(uow, "north", T1)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            uow.users.update_profile("a1", {"district": "south"}, T2)
            uow.users.update_profile("a2", {"district": "south"}, T2)
            uow.users.update_profile("a3", {"district": "north"}, T2)
            # a2 changed too, but is not named; "ghost" is no directory user.
            result = refresh(uow, "north", T2, only_users=["a3", "a1", "ghost"])
            uow.commit()
        assert result == RefreshResult(1, 1, 3, ("a3",), ("a1",))
        with SqlUnitOfWork(engine).reading() as uow:
            # a2 no longer matches but was not named: still a member.
            assert [m.user_id for m in uow.memberships.members("north")] == ["a2", "a3", "a5"]

    @pytest.mark.parametrize("some_users", [False, True], ids=["every-user", "some-users"])
    def test_a_member_who_stays_for_another_reason_gets_it_with_a_history_row(
        self, engine: sa.Engine, some_users: bool
    ) -> None:
        """Issue 14: a1, a member by the criteria, added to the include list stayed ``criteria`` with no
        trace; now the reason follows (and back), the join time stays, and each change is a row."""
        people(engine)
        only = ["a1", "a2"] if some_users else None
        with SqlUnitOfWork(engine) as uow:
            refresh(uow, "north", T1)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            uow.groups.set_overrides("north", ["a5", "a1"], ["a4"])
            included = refresh(uow, "north", T2, only_users=only)
            uow.commit()
        t3 = T2 + timedelta(hours=1)
        with SqlUnitOfWork(engine) as uow:
            uow.groups.set_overrides("north", ["a5"], ["a4"])
            back = refresh(uow, "north", t3, only_users=only)
            uow.commit()
        assert (included.joined, included.left, included.reasons_changed) == (0, 0, 1)
        assert (back.joined, back.left, back.reasons_changed, back.member_count) == (0, 0, 1, 3)
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.memberships.members("north") == [
                Member("a1", T1, "criteria"),
                Member("a2", T1, "criteria"),
                Member("a5", T1, "included"),
            ]
            later = [(c.user_id, c.change, c.at, c.reason) for c in uow.memberships.history("north")[3:]]
        assert later == [("a1", "reason", T2, "included"), ("a1", "reason", t3, "criteria")]
        with SqlUnitOfWork(engine) as uow:
            uow.groups.set_overrides("north", ["a5", "a1"], ["a4"])
            refresh(uow, "north", t3, only_users=only)
            assert uow.memberships.members("north")[0] == Member("a1", T1, "included")

    def test_a_pulled_membership_keeps_the_reason_it_joined_with(self, engine: sa.Engine) -> None:
        """A pull's reason is its trigger (``legacy-created``, then ``legacy-on-demand``...): not a
        reason change for every member at every pull."""
        people(engine)
        with SqlUnitOfWork(engine) as uow:
            stored = uow.groups.get("north")
            assert stored is not None
            for source, at in (("legacy-created", T1), ("legacy-on-demand", T2)):
                pulled = MembershipRule(None, frozenset({"a1", "a3"}), source=source)
                for only in (None, ["a1"]):
                    result = uow.memberships.refresh(
                        stored, pulled, EvaluationContext(stored.scope, at), reason=source, only_users=only
                    )
                    assert result.reasons_changed == 0
            assert {m.reason for m in uow.memberships.members("north")} == {"legacy-created"}
            assert [c.change for c in uow.memberships.history("north")] == ["joined", "joined"]

    def test_criteria_left_to_python_give_the_same_membership(self, engine: sa.Engine) -> None:
        """Without a SQL compiler for a criterion, the candidates are decided in Python: same result."""
        people(engine)
        tree = {"or": [NORTH, RECENT]}
        with SqlUnitOfWork(engine) as uow:
            uow.users.record_login("a3", T2 - timedelta(days=3))  # recent as of the evaluation's time
            uow.groups.add(group("sql", criteria=tree))
            uow.groups.add(group("python", criteria=tree))
            for group_id in ("sql", "python"):
                uow.groups.set_overrides(group_id, ["a5"], ["a4"])
            refresh(uow, "sql", T2)
            uow.commit()
        with SqlUnitOfWork(engine, compiler=CriteriaCompiler({})) as uow:
            result = refresh(uow, "python", T2)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            by_sql = [(m.user_id, m.reason) for m in uow.memberships.members("sql")]
            by_python = [(m.user_id, m.reason) for m in uow.memberships.members("python")]
        assert by_sql == [("a1", "criteria"), ("a2", "criteria"), ("a3", "criteria"), ("a5", "included")]
        assert by_python == by_sql
        assert (result.joined, result.member_count) == (4, 4)

    def test_a_preview_writes_nothing_and_caps_its_sample(self, engine: sa.Engine) -> None:
        people(engine)
        with SqlUnitOfWork(engine) as uow:
            refresh(uow, "north", T1)
            uow.commit()
        with SqlUnitOfWork(engine) as uow:
            stored = uow.groups.get("north")
            assert stored is not None
            rule = MembershipRule(stored.criteria, frozenset({"a3", "a4"}), frozenset({"a1", "a2"}))
            preview = uow.memberships.preview(stored, rule, EvaluationContext(stored.scope, T2), sample=1)
            assert uow.memberships.members("north") == [
                Member("a1", T1, "criteria"),
                Member("a2", T1, "criteria"),
                Member("a5", T1, "included"),
            ]
            assert len(uow.memberships.history("north")) == 3
            applied = uow.memberships.refresh(
                stored, rule, EvaluationContext(stored.scope, T2), reason="on-demand"
            )
        # a3 and a4 would join, a1, a2 and a5 would leave; one id of each in the sample.
        assert preview == RefreshResult(2, 3, 2, ("a3",), ("a1",))
        assert (applied.joined, applied.left, applied.member_count) == (2, 3, 2)

    def test_members_page_by_user_id(self, engine: sa.Engine) -> None:
        people(engine)
        with SqlUnitOfWork(engine) as uow:
            refresh(uow, "north", T1)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert [m.user_id for m in uow.memberships.members("north", after="a1", limit=1)] == ["a2"]
            assert [m.user_id for m in uow.memberships.members("north", after="a2")] == ["a5"]
            assert uow.memberships.members("north", after="a5") == []
            assert uow.memberships.members("never") == []

    def test_history_pages_by_id_and_filters_by_user(self, engine: sa.Engine) -> None:
        people(engine)
        with SqlUnitOfWork(engine) as uow:
            refresh(uow, "north", T1)
            uow.groups.set_overrides("north", [], ["a4", "a1"])
            refresh(uow, "north", T2)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            everything = uow.memberships.history("north")
            first = uow.memberships.history("north", limit=1)
            next_page = uow.memberships.history("north", after_id=first[0].id, limit=1)
            of_a1 = uow.memberships.history("north", user_id="a1")
            after_a1_joined = uow.memberships.history("north", user_id="a1", after_id=of_a1[0].id)
            past_the_end = uow.memberships.history("north", after_id=everything[-1].id)
        ids = [c.id for c in everything]
        assert ids == sorted(set(ids))
        assert len(everything) == 5  # three joins, then a1 and a5 leave
        assert first == everything[:1]
        assert next_page == everything[1:2]
        assert [(c.change, c.at, c.reason) for c in of_a1] == [
            ("joined", T1, "criteria"),
            ("left", T2, "excluded"),
        ]
        assert after_a1_joined == of_a1[1:]
        assert past_the_end == []

    def test_is_member_follows_the_stored_membership(self, engine: sa.Engine) -> None:
        people(engine)
        with SqlUnitOfWork(engine) as uow:
            refresh(uow, "north", T1)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.memberships.is_member("north", "a1")
            assert uow.memberships.is_member("north", "a5")
            assert not uow.memberships.is_member("north", "a4")  # matched, but excluded
            assert not uow.memberships.is_member("north", "a3")
            assert not uow.memberships.is_member("other", "a1")

    def test_leaving_without_commit_rolls_a_refresh_back(self, engine: sa.Engine) -> None:
        people(engine)
        with SqlUnitOfWork(engine) as uow:
            refresh(uow, "north", T1)
            uow.groups.add(group("uncommitted"))
        with SqlUnitOfWork(engine).reading() as uow:
            assert uow.memberships.members("north") == []
            assert uow.memberships.history("north") == []
            assert uow.groups.get("uncommitted") is None
            stored = uow.groups.get("north")
        assert stored is not None
        assert (stored.member_count, stored.last_refreshed_at) == (0, None)


class GroupFactsContract:
    def test_facts_are_loaded_for_directory_users_only(self, engine: sa.Engine) -> None:
        key = EnrolmentKey("ann", "c1", "b1")
        with SqlUnitOfWork(engine) as uow:
            uow.users.upsert_many([User("ann", profile={"lang": "en"}), User("ben")], T0)
            state = EnrolmentState(key, {"r1": 2}, completion_percentage=50, last_updated=T0)
            uow.enrolments.add(Enrolment(state, True, T1, mode="verified"))
            # Enrolled and active, but not in the directory.
            ghost = EnrolmentState(EnrolmentKey("ghost", "c1", "b1"), last_updated=T0)
            uow.enrolments.add(Enrolment(ghost, True, T1))
            uow.activity.upsert([UnitMetrics("CourseUnit", "m1", "ann", "cb:b1", 1, 2, 50)], T1)
            uow.commit()
        with SqlUnitOfWork(engine).reading() as uow:
            facts = uow.group_facts.load(["ann", "ghost", "nobody", "ben", "ann"])
            ann = uow.users.get("ann")
        assert set(facts) == {"ann", "ben"}
        assert facts["ann"].user == ann
        assert facts["ann"].enrolments == (EnrolmentFacts("c1", "b1", True, "verified", T1, 50, {"r1": 2}),)
        assert_utc(facts["ann"].enrolments[0].enrolled_on)
        assert dict(facts["ann"].unit_progress) == {("b1", "m1"): 50}
        assert (facts["ben"].enrolments, dict(facts["ben"].unit_progress)) == ((), {})


class TestSqliteUserAndGroupStores(
    OnSqlite, UserDirectoryContract, UserGroupStoreContract, MembershipsContract, GroupFactsContract
):
    pass


class TestPostgresUserAndGroupStores(
    OnPostgres, UserDirectoryContract, UserGroupStoreContract, MembershipsContract, GroupFactsContract
):
    pass
