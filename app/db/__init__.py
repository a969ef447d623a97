"""The database: SQLAlchemy models, tenant scoping, sessions, Alembic migrations, embedded Postgres.

Knows nothing of routes or calls. Every tenant row carries `org_id`, and `tenancy` adds the
filter to every ORM query of a session opened for an organization.
"""
