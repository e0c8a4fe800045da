"""SQLite persistence: schema, migrations, and the rows of each table."""

from journeys_engine.store.database import SCHEMA_VERSION, Database

__all__ = ["SCHEMA_VERSION", "Database"]
