"""运维目录库 — the ops catalog: what every DAG did, in PostgreSQL (connection ``hisops_catalog``).

``tables`` describes the schema, ``migrations`` (run by ``migrate.upgrade``) creates it, and
``CatalogRepository`` is the only way code reads or writes it.
"""

from hisops.catalog.repository import BackupStateError, CatalogError, CatalogRepository

__all__ = ["BackupStateError", "CatalogError", "CatalogRepository"]
