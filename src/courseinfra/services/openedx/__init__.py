"""The Open edX intake: events read from Open edX's event bus (or posted to a webhook) applied to the
user groups linked to legacy groups (ADR 0022)."""
