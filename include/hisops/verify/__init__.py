"""恢复演练与数据恢复 Restore drills and restores: the proof that a backup really restores.

- ``plan``         which backups a run drills, and each one's job (scratch name, depth)
- ``jobs``         one job → its drill (logical here, PITR in ``hisops.pitr``); scratch cleanup
- ``record``       verification row, backup state, incident, audit, supervisors' alert, verdict
- ``scratch``      scratch databases (names that can never be production), pg_restore -j,
  guarded drop
- ``expectations`` the Great Expectations suite planned from the manifest + inventory (plain data)
- ``gx_runner``    runs that plan with GX 1.x (ephemeral context, SQL pushed down), Data Docs
  evidence
- ``amcheck``      bt_index_check on every restored btree index
- ``drill``        the whole drill → :class:`hisops.verify.drill.DrillResult`
- ``restore``      restore on demand: into a new database, or overwrite with safety backup and swap

Pure domain logic: no Airflow here (adapter: ``hisops.airflow.verify_tasks``). Heavy imports
(great_expectations, psycopg2, sqlalchemy) happen inside functions.
"""
