"""恢复演练 Restore drills: the proof that a backup really restores.

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

Restore on demand is ``hisops.restore`` (it reuses ``scratch``'s pg_restore). Pure domain logic:
no Airflow here (adapter: ``hisops.airflow.verify_tasks``). Heavy imports (great_expectations,
psycopg2, sqlalchemy) happen inside functions.
"""
