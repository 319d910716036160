"""Implementations of the ``LegacyGroups`` port: the local tables (and, later, a real Open edX)."""

from courseinfra.adapters.legacy.local import LocalLegacyGroups

__all__ = ["LocalLegacyGroups"]
