"""PostgreSQL access: ORM models, engine factory, Alembic migrations and the seed data."""
