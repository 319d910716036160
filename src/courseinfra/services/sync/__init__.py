"""Legacy sync: user groups linked to cohorts, teams and enrollment tracks, kept in step with them."""

from courseinfra.services.sync.handlers import (
    DeletePolicy,
    DeleteRestricted,
    LegacySync,
    SyncFailed,
    failure_json,
)

__all__ = [
    "DeletePolicy",
    "DeleteRestricted",
    "LegacySync",
    "SyncFailed",
    "failure_json",
]
