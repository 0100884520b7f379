"""数据恢复 Restore on demand (第十一条: restore promptly when data is damaged or lost).

- :mod:`hisops.restore.request` — the trigger form, who may, which backup (decisions, no I/O);
- :mod:`hisops.restore.names` — staging and new-database names, the drop guard's pattern;
- :mod:`hisops.restore.stage` — checksums, then pg_restore into a staging database;
- :mod:`hisops.restore.switch` — staging → new database, or swapped with production;
- :mod:`hisops.restore.service` — the steps as the DAG runs them, audited in the catalog;
- :mod:`hisops.restore.pitr` — a pgBackRest backup to a point in time into a new cluster.

Light: importing the package imports nothing heavy (drivers are imported inside functions).
"""
