"""The SQL store (SQLAlchemy 2 Core): SQLite for the embedded default, PostgreSQL in production."""
