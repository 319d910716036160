"""Legacy sync: the legacy groups (cohorts, teams, enrollment tracks) user groups link to, what each
kind does, the sync log and the sync status. The linked groups' operations are user groups' own
(:mod:`courseinfra.services.groups`)."""

from courseinfra.services.sync.queries import LinkDifference, SyncStatus, sync_status

__all__ = ["LinkDifference", "SyncStatus", "sync_status"]
