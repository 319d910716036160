"""Use cases: each a small function of (command or event, the ports it needs)."""
