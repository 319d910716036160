"""The SQL unit of work builds a store on the block's connection the first time the block uses it."""

from __future__ import annotations

from courseinfra.adapters.sql.uow import STORES, SqlUnitOfWork
from courseinfra.bootstrap import App
from courseinfra.services.unit_of_work import UnitOfWork


def test_a_block_builds_only_the_stores_it_uses(app: App) -> None:
    uow = app.uow_factory()
    assert isinstance(uow, SqlUnitOfWork)
    with uow:
        assert uow.batches.list() == []
        built = {name for name in STORES if name in vars(uow)}
        assert built == {"batches"}
        assert uow.batches is uow.batches  # kept for the rest of the block
        first = uow.batches
    with uow:
        assert not any(name in vars(uow) for name in STORES)  # none of the previous block's
        assert uow.batches is not first
        assert uow.batches.connection is uow.connection


def test_every_store_of_the_port_is_built_lazily() -> None:
    assert len(STORES) == len(set(STORES))
    assert set(STORES) == set(UnitOfWork.__annotations__)
