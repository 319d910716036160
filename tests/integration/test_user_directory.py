"""The user directory (``SqlUserDirectory`` and the services on it), on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from courseinfra.bootstrap import App
from courseinfra.domain.events import UserLoggedIn, UserProfileChanged
from courseinfra.domain.users import RecordFormat, RowError, User, UsernameTaken
from courseinfra.services import users as service
from courseinfra.services.events.ports import OutboxMessage
from tests.support.builders import relayed_by_hand

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)


def put(app: App, *users: User, at: datetime = T0) -> tuple[int, int]:
    with app.uow_factory() as uow:
        counts = uow.users.upsert_many(users, at)
        uow.commit()
    return counts


def get(app: App, user_id: str) -> User:
    with app.uow_factory() as uow:
        found = uow.users.get(user_id)
    assert found is not None, f"{user_id} is stored"
    return found


def pending(app: App, event_type: str) -> list[OutboxMessage]:
    with app.uow_factory() as uow:
        return [m for m in uow.outbox.pending(1000) if m.event_type == event_type]


def test_upsert_counts_inserts_updates_and_keeps_what_it_should(app: App) -> None:
    ada = User("u1", username="ada", email="ada@example.org", organisation="o1", profile={"d": "N"})
    assert put(app, ada, User("u2"), at=T0) == (2, 0)
    stored = get(app, "u1")
    assert (stored.created_at, stored.updated_at, stored.profile) == (T0, T0, {"d": "N"})
    assert stored.created_at is not None
    assert stored.created_at.tzinfo is not None

    assert put(app, ada, User("u2"), User("u3"), at=T1) == (1, 0), "same fields: neither"
    stored = get(app, "u1")
    assert stored.updated_at == T0, "an unchanged user keeps its updated_at"

    renamed = User("u1", username="ada", email="ada@example.org", organisation="o2", profile={"d": "S"})
    assert put(app, renamed, at=T2) == (0, 1)
    stored = get(app, "u1")
    assert (stored.organisation, stored.profile, stored.created_at, stored.updated_at) == (
        "o2",
        {"d": "S"},
        T0,
        T2,
    )
    with app.uow_factory() as uow:
        assert uow.users.count() == 3
        assert set(uow.users.get_many(["u1", "u3", "nobody", "u1"])) == {"u1", "u3"}


def test_last_login_never_moves_back(app: App) -> None:
    put(app, User("u1", last_login_at=T1))
    assert put(app, User("u1", last_login_at=T0), at=T2) == (0, 0), "an earlier login is no change"
    assert put(app, User("u1"), at=T2) == (0, 0), "no login in the record keeps the stored one"
    stored = get(app, "u1")
    assert stored.last_login_at == T1
    assert put(app, User("u1", last_login_at=T2), at=T2) == (0, 1)
    stored = get(app, "u1")
    assert stored.last_login_at == T2

    with app.uow_factory() as uow:
        assert uow.users.record_login("u1", T1) is False
        assert uow.users.record_login("u1", T2) is False, "the same instant is not later"
        # Another zone, 30 minutes later than T2.
        later = (T2 + timedelta(minutes=30)).astimezone(timezone(timedelta(hours=5, minutes=30)))
        assert uow.users.record_login("u1", later) is True
        assert uow.users.record_login("nobody", T2) is False
        uow.commit()
    stored = get(app, "u1")
    assert stored.last_login_at == T2 + timedelta(minutes=30)
    assert stored.updated_at == T2, "a login does not touch updated_at"


def test_a_taken_username_is_refused_before_anything_is_written(app: App) -> None:
    put(app, User("u1", username="ada"), User("u2", username="ben"))
    with app.uow_factory() as uow, pytest.raises(UsernameTaken) as taken:
        uow.users.upsert_many([User("u3", username="new"), User("u4", username="ada")], T1)
    assert taken.value.conflicts == {"u4": ("ada", "u1")}
    with app.uow_factory() as uow, pytest.raises(UsernameTaken) as taken:
        uow.users.upsert_many([User("u5", username="zed"), User("u6", username="zed")], T1)
    assert taken.value.conflicts == {"u6": ("zed", "u5")}
    with app.uow_factory() as uow:
        assert uow.users.count() == 2
        assert uow.users.get("u3") is None


def test_usernames_may_swap_within_one_upsert(app: App) -> None:
    put(app, User("u1", username="ada"), User("u2", username="ben"))
    assert put(app, User("u1", username="ben"), User("u2", username="ada"), at=T1) == (0, 2)
    with app.uow_factory() as uow:
        found = uow.users.get_many(["u1", "u2"])
    assert (found["u1"].username, found["u2"].username) == ("ben", "ada")
    # A username freed by its holder in the same upsert can go to a new user.
    assert put(app, User("u1"), User("u9", username="ben"), at=T2) == (1, 1)
    stored = get(app, "u9")
    assert stored.username == "ben"


def test_bulk_upsert_and_paging_over_chunks(app: App) -> None:
    many = [User(f"u{i:04d}", username=f"n{i}", organisation=f"o{i % 3}") for i in range(1203)]
    assert put(app, *many) == (1203, 0)
    with app.uow_factory() as uow:
        assert uow.users.count() == 1203
        assert len(uow.users.get_many([u.user_id for u in many])) == 1203
        seen: list[str] = []
        after = ""
        while page := uow.users.list(after=after, limit=500, organisation="o1"):
            seen += [u.user_id for u in page]
            after = page[-1].user_id
        assert seen == [u.user_id for u in many if u.organisation == "o1"]
        assert [u.user_id for u in uow.users.list(limit=2)] == ["u0000", "u0001"]
        assert [u.user_id for u in uow.users.list(after="u1201")] == ["u1202"]
    renamed = [User(u.user_id, username=f"m{i}", organisation=u.organisation) for i, u in enumerate(many)]
    assert put(app, *renamed, at=T1) == (0, 1203)


def test_update_profile(app: App) -> None:
    put(app, User("u1", profile={"a": "1", "b": "2"}))
    with app.uow_factory() as uow:
        updated = uow.users.update_profile("u1", {"b": None, "c": "3"}, T1)
        assert uow.users.update_profile("nobody", {"a": "1"}, T1) is None
        uow.commit()
    assert updated is not None
    assert (dict(updated.profile), updated.updated_at) == ({"a": "1", "c": "3"}, T1)
    assert get(app, "u1") == updated
    with app.uow_factory() as uow:
        same = uow.users.update_profile("u1", {"a": "1", "zzz": None}, T2)
        uow.commit()
    assert same is not None
    assert same.updated_at == T1, "no change, no new updated_at"


def test_import_is_all_or_nothing(app: App) -> None:
    relayed_by_hand(app)
    good = "user_id,username,district\nu1,ada,North\nu2,ben,\n"
    report = service.import_users(good, RecordFormat.CSV, app.uow_factory, at=T0)
    assert (report.inserted, report.updated, report.unchanged, report.errors) == (2, 0, 0, ())
    changed = pending(app, UserProfileChanged.event_type)
    assert [(m.key, m.payload["changed"]) for m in changed] == [("u1", {"district": "North"})]

    bad = "user_id,username,district\nu3,cid,East\nu1,ada,South\n,x,\n"
    report = service.import_users(bad, RecordFormat.CSV, app.uow_factory, at=T1)
    assert report.errors == (RowError(4, "missing-user-id", "user_id is missing or empty"),)
    with app.uow_factory() as uow:
        assert uow.users.get("u3") is None, "nothing is written when a row is bad"
        stored = uow.users.get("u1")
        assert stored is not None
        assert stored.profile == {"district": "North"}

    taken = "user_id,username\nu3,cid\nu4,ada\n"
    report = service.import_users(taken, RecordFormat.CSV, app.uow_factory, at=T1)
    assert report.errors == (RowError(3, "username-taken", "username ada is held by user u1"),)
    with app.uow_factory() as uow:
        assert uow.users.count() == 2

    again = "user_id,username,district\nu1,ada,South\nu2,ben,\n"
    report = service.import_users(again, RecordFormat.CSV, app.uow_factory, at=T2)
    assert (report.inserted, report.updated, report.unchanged) == (0, 1, 1)
    changed = pending(app, UserProfileChanged.event_type)
    assert changed[-1].payload["changed"] == {"district": "South"}
    assert len(changed) == 2


def test_logins_and_profile_updates_record_events(app: App) -> None:
    relayed_by_hand(app)
    put(app, User("u1", profile={"district": "North"}))
    user, moved = service.record_login("u1", app.uow_factory(), T1)
    assert (moved, user.last_login_at) == (True, T1)
    user, moved = service.record_login("u1", app.uow_factory(), T0)
    assert (moved, user.last_login_at) == (False, T1)
    logins = pending(app, UserLoggedIn.event_type)
    assert [(m.key, m.payload["logged_in_at"]) for m in logins] == [("u1", T1.isoformat())]
    with pytest.raises(service.UserNotFound):
        service.record_login("nobody", app.uow_factory(), T1)

    updated = service.update_profile("u1", {"district": "South", "school": "Hill"}, app.uow_factory(), T2)
    assert updated.profile == {"district": "South", "school": "Hill"}
    service.update_profile("u1", {"school": "Hill"}, app.uow_factory(), T2)
    changed = pending(app, UserProfileChanged.event_type)
    assert len(changed) == 1, "an update that changes nothing records nothing"
    assert changed[0].payload["changed"] == {"district": "South", "school": "Hill"}
    assert changed[0].payload["profile"] == {"district": "South", "school": "Hill"}
    with pytest.raises(service.UserNotFound):
        service.update_profile("nobody", {"a": "b"}, app.uow_factory())
