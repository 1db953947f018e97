"""Storage helpers: SQLAlchemy engines (SQLite embedded, PostgreSQL in production) and the artefact store."""
