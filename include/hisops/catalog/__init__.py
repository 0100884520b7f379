"""运维目录库 — the ops catalog: what every DAG did, in PostgreSQL (connection ``hisops_catalog``).

``tables`` describes the schema, ``migrations`` (run by ``migrate.upgrade``) creates it, and
``hisops.catalog.repository.CatalogRepository`` is the only way code reads or writes it.

This package file imports nothing: ``hisops.catalog.records`` (plain dataclasses) must be
importable without SQLAlchemy, e.g. by DAG files at parse time. Import the repository from
``hisops.catalog.repository``.
"""
