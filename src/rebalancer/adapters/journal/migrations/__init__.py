"""Alembic migrations of the journal, applied automatically when a journal is opened."""
