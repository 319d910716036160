"""The store of Open edX events applied, on every backend: an id is recorded once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from courseinfra.bootstrap import App

T0 = datetime(2026, 9, 3, 12, tzinfo=UTC)


def test_an_event_id_is_recorded_once_and_pruned_by_age(app: App) -> None:
    with app.uow_factory() as uow:
        assert uow.openedx_events.record("id-1", "org.openedx.learning.cohort_membership.changed.v1", T0)
        assert uow.openedx_events.record("id-2", "org.openedx.learning.course.enrollment.created.v1", T0)
        assert not uow.openedx_events.record("id-1", "org.openedx.learning.cohort_membership.changed.v1", T0)
        uow.commit()
    with app.uow_factory() as uow:
        assert not uow.openedx_events.record("id-2", "org.openedx.learning.course.enrollment.created.v1", T0)
        assert uow.openedx_events.record(
            "id-3", "org.openedx.learning.course.enrollment.created.v1", T0 + timedelta(days=2)
        )
        uow.commit()
    with app.uow_factory().reading() as uow:
        assert uow.openedx_events.applied(["id-1", "id-3", "id-9", "id-1"]) == {"id-1", "id-3"}
        assert uow.openedx_events.applied([]) == set()
    with app.uow_factory() as uow:
        assert uow.openedx_events.prune(T0 + timedelta(days=1), limit=1) == 1
        assert uow.openedx_events.prune(T0 + timedelta(days=1)) == 1
        uow.commit()
    with app.uow_factory().reading() as uow:
        assert uow.openedx_events.applied(["id-1", "id-2", "id-3"]) == {"id-3"}


def test_a_rolled_back_record_is_not_kept(app: App) -> None:
    with app.uow_factory() as uow:
        uow.openedx_events.record("id-1", "org.openedx.learning.cohort_membership.changed.v1", T0)
    with app.uow_factory().reading() as uow:
        assert uow.openedx_events.applied(["id-1"]) == set()
