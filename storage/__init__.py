"""Persistence: tables, repository functions, session scope and migrations."""
