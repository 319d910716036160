"""Relation cache implementations: in-memory (tests), an embedded SQLite file (the default), Redis."""
