"""The AUDIT log: the AUDIT events the aggregator emitted, in commit order."""
