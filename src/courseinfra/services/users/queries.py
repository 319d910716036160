"""What entry points read of the user directory."""

from __future__ import annotations

from courseinfra.domain.users import User
from courseinfra.services.unit_of_work import UowFactory
from courseinfra.services.users.handlers import UserNotFound


def get_user(user_id: str, uow_factory: UowFactory) -> User:
    with uow_factory().reading() as uow:
        found = uow.users.get(user_id)
    if found is None:
        raise UserNotFound(f"user {user_id} does not exist")
    return found


def list_users(
    uow_factory: UowFactory, *, organisation: str | None = None, after: str = "", limit: int = 100
) -> list[User]:
    """Users in user id order above ``after``, optionally of one organisation."""
    with uow_factory().reading() as uow:
        return uow.users.list(after=after, limit=limit, organisation=organisation)
