"""Alembic migrations of the trace schema (revision 0001 = schema v1, frozen)."""
