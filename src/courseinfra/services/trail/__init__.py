"""The trail of who changed what: who acts (set by the entry point for its request or command), and
what administrators read of it (:mod:`.queries`). The unit of work writes what its use case notes."""

from courseinfra.services.trail.actors import acting_as, current_actor

__all__ = ["acting_as", "current_actor"]
