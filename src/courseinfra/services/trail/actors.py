"""Who the current request or command acts for. The entry point sets it once (the API from the bearer
token, the CLI from the user and machine); every unit of work opened on its behalf writes it on the
changes it notes. A context variable, so that concurrent requests (each its own task or thread
context) never see each other's."""

from __future__ import annotations

from contextvars import ContextVar

from courseinfra.domain.trail import SYSTEM, Actor

_ACTOR: ContextVar[Actor] = ContextVar("courseinfra_actor", default=SYSTEM)


def acting_as(actor: Actor) -> None:
    """Make ``actor`` the author of the changes made from here on in this context."""
    _ACTOR.set(actor)


def current_actor() -> Actor:
    return _ACTOR.get()
