"""The store of expected echoes (ADR 0022), on every backend: one echo per group and user, found while
it lives, cleared, pruned once expired, and gone with its group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from courseinfra.bootstrap import App
from courseinfra.domain.legacy_echoes import ExpectedEcho
from courseinfra.services.groups import GroupDefinition

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=10)


def echo(
    group: str, user: str, member: bool = True, state: str | None = "Blue", at: datetime = LATER
) -> ExpectedEcho:
    return ExpectedEcho(group, user, member, state, at)


def test_an_echo_per_group_and_user_is_found_while_it_lives(app: App) -> None:
    with app.uow_factory() as uow:
        uow.echoes.expect([echo("g", "u1"), echo("g", "u2", False, None), echo("h", "u1", False, "Blue")])
        uow.commit()
    with app.uow_factory() as uow:
        # A later write replaces the pair's echo (the last one given for a pair wins).
        uow.echoes.expect(
            [echo("g", "u1", False, "Red"), echo("g", "u1", True, "Green", LATER + timedelta(1))]
        )
        uow.commit()
    with app.uow_factory().reading() as uow:
        found = uow.echoes.find("g", ["u1", "u2", "u9"], T0)
        assert found == {
            "u1": echo("g", "u1", True, "Green", LATER + timedelta(1)),
            "u2": echo("g", "u2", False, None),
        }
        assert found["u1"].expires_at.utcoffset() == timedelta(0)
        assert uow.echoes.find("h", ["u1"], T0) == {"u1": echo("h", "u1", False, "Blue")}
        assert uow.echoes.find("g", [], T0) == {}
        # At its expiry an echo is no longer found.
        assert uow.echoes.find("g", ["u1", "u2"], LATER) == {
            "u1": echo("g", "u1", True, "Green", LATER + timedelta(1))
        }
        assert uow.echoes.count() == 3


def test_echoes_are_cleared_and_pruned_once_expired(app: App) -> None:
    with app.uow_factory() as uow:
        uow.echoes.expect(
            [
                echo("g", "u1"),
                echo("g", "u2"),
                echo("g", "u3", at=T0),
                echo("h", "u1", at=T0 - timedelta(minutes=1)),
                echo("h", "u2"),
            ]
        )
        uow.commit()
    with app.uow_factory() as uow:
        assert uow.echoes.clear("g", ["u1", "u9"]) == 1
        assert uow.echoes.clear("g", []) == 0
        # The oldest expiry first; one still alive is kept.
        assert uow.echoes.prune(T0, limit=1) == 1
        assert uow.echoes.find("g", ["u3"], T0 - timedelta(minutes=5)) != {}
        assert uow.echoes.prune(T0) == 1
        assert uow.echoes.prune(T0) == 0
        uow.commit()
    with app.uow_factory() as uow:
        assert uow.echoes.count() == 2
        assert uow.echoes.clear("h") == 1
        uow.commit()
    with app.uow_factory().reading() as uow:
        assert set(uow.echoes.find("g", ["u1", "u2", "u3"], T0 - timedelta(minutes=5))) == {"u2"}
        assert uow.echoes.count() == 1


def test_a_rolled_back_echo_is_not_kept_and_a_deleted_group_takes_its_echoes(app: App) -> None:
    with app.uow_factory() as uow:
        uow.echoes.expect([echo("g", "u1")])
    with app.uow_factory().reading() as uow:
        assert uow.echoes.count() == 0
    app.groups.create_group("g", GroupDefinition(name="G", scope="instance"))
    with app.uow_factory() as uow:
        uow.echoes.expect([echo("g", "u1"), echo("other", "u1")])
        uow.commit()
    app.groups.delete_group("g", expected_version=None)
    with app.uow_factory().reading() as uow:
        assert uow.echoes.find("g", ["u1"], T0) == {}
        assert set(uow.echoes.find("other", ["u1"], T0)) == {"u1"}
