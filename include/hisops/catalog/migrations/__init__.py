"""Alembic scripts of the ops catalog (run through hisops.catalog.migrate)."""
