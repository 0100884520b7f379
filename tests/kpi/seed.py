"""A known month of catalog data (November 2026, Asia/Shanghai) for the KPI tests.

Written with plain SQL on the test catalog: the figures below are what the report must show.
"""

from __future__ import annotations

from sqlalchemy import text

TZ = "Asia/Shanghai"

SEED_SQL = """
SET TIME ZONE 'Asia/Shanghai';
INSERT INTO hisops.inspection_run (dag_id, run_id, logical_date, started_at, finished_at, state)
SELECT 'daily_inspection', 'scheduled__' || d::date, d::date + time '07:00', d::date + time '07:00',
       d::date + CASE WHEN extract(day FROM d) IN (29, 30) THEN time '08:30' ELSE time '07:20' END,
       'success'
FROM generate_series(timestamptz '2026-11-01', timestamptz '2026-11-30', interval '1 day') d
WHERE extract(day FROM d) <> 15;
INSERT INTO hisops.inspection_run (dag_id, run_id, logical_date, started_at, finished_at, state)
VALUES ('daily_inspection', 'backfill__2026-11-15', '2026-11-15 07:00', '2026-11-16 09:00',
        '2026-11-16 09:10', 'success'),
       ('daily_inspection', 'scheduled__2026-10-31', '2026-10-31 07:00', '2026-10-31 07:00',
        '2026-10-31 07:10', 'success');

-- reachability samples: one per target and day at 07:05; his_outpatient down on the 4th and 5th
INSERT INTO hisops.finding (inspection_run_id, check_id, target_kind, target_id, system_id,
                            severity, message_zh, message_en, observed_at)
SELECT r.id, c.check_id, c.kind, c.target, c.system,
       CASE WHEN c.target = 'his_outpatient' AND extract(day FROM r.logical_date) IN (4, 5)
            THEN 'critical' ELSE 'ok' END, '…', '…', r.logical_date + interval '5 minutes'
FROM hisops.inspection_run r
CROSS JOIN (VALUES ('database.reachable', 'database', 'his_outpatient', 'outpatient'),
                   ('host.reachable', 'host', 'his-app-local', 'outpatient'),
                   ('http.status', 'endpoint', 'airflow-ui', 'outpatient'),
                   ('database.reachable', 'database', 'his_inpatient', 'inpatient'),
                   ('db.connections', 'database', 'his_inpatient', 'inpatient'))
           AS c(check_id, kind, target, system)
WHERE r.run_id LIKE 'scheduled__%';
-- his_outpatient during its maintenance operation (excluded), checked by an ad-hoc run of its own
INSERT INTO hisops.inspection_run (dag_id, run_id, logical_date, started_at, finished_at, state)
VALUES ('adhoc_check', 'manual__2026-11-12', '2026-11-12 02:30', '2026-11-12 02:30',
        '2026-11-12 02:31', 'success');
INSERT INTO hisops.maintenance_operation (database_id, kind, state, started_at, finished_at)
VALUES ('his_outpatient', 'reindex', 'completed', '2026-11-12 02:00', '2026-11-12 03:00');
INSERT INTO hisops.finding (inspection_run_id, check_id, target_kind, target_id, system_id,
                            severity, message_zh, message_en, observed_at)
SELECT id, 'database.reachable', 'database', 'his_outpatient', 'outpatient', 'critical', '…', '…',
       timestamptz '2026-11-12 02:30'
FROM hisops.inspection_run WHERE dag_id = 'adhoc_check';

INSERT INTO hisops.incident (check_id, target_id, system_id, severity, state, title_zh, title_en,
                             opened_at, acknowledged_at, acknowledged_by, resolved_at)
VALUES ('database.reachable', 'his_outpatient', 'outpatient', 'warn', 'resolved', 'a', 'a',
        '2026-11-03 07:00', '2026-11-03 07:10', 'operator1', '2026-11-03 09:00'),
       ('database.reachable', 'his_outpatient', 'outpatient', 'critical', 'resolved', 'b', 'b',
        '2026-11-10 07:00', '2026-11-10 07:30', 'operator2', '2026-11-10 11:00'),
       ('db.connections', 'his_inpatient', 'inpatient', 'warn', 'resolved', 'c', 'c',
        '2026-11-20 07:00', NULL, NULL, '2026-11-21 07:00'),
       ('db.connections', 'his_inpatient', 'inpatient', 'warn', 'resolved', 'old', 'old',
        '2026-10-20 07:00', '2026-10-20 07:01', 'operator1', '2026-10-20 08:00');

-- backups at 01:00: his_outpatient verified on 28 days (failed on the 7th, none on the 8th, a
-- second verified one on the 5th), his_inpatient verified every day, his_emr never
INSERT INTO hisops.backup (database_id, system_id, kind, state, started_at, finished_at)
SELECT 'his_outpatient', 'outpatient', 'database',
       CASE WHEN extract(day FROM d) = 7 THEN 'failed' ELSE 'verified' END,
       d::date + time '01:00', d::date + time '01:10'
FROM generate_series(timestamptz '2026-11-01', timestamptz '2026-11-30', interval '1 day') d
WHERE extract(day FROM d) <> 8
UNION ALL SELECT 'his_outpatient', 'outpatient', 'database', 'verified', '2026-11-05 14:00',
                 '2026-11-05 14:10'
UNION ALL
SELECT 'his_inpatient', 'inpatient', 'database', 'verified', d::date + time '01:00',
       d::date + time '01:20'
FROM generate_series(timestamptz '2026-11-01', timestamptz '2026-11-30', interval '1 day') d;

-- drills of the outpatient backups of days 1..10 (restore 11..20 s), plus one failed drill
INSERT INTO hisops.backup_verification (backup_id, started_at, finished_at, ok, restore_seconds)
SELECT id, finished_at + interval '5 minutes', finished_at + interval '6 minutes', true,
       10 + extract(day FROM started_at)
FROM hisops.backup
WHERE database_id = 'his_outpatient' AND extract(day FROM started_at) <= 10 AND state = 'verified'
  AND started_at::time = time '01:00';
INSERT INTO hisops.backup_verification (backup_id, started_at, finished_at, ok, error)
SELECT id, finished_at + interval '5 minutes', finished_at + interval '6 minutes', false,
       'checksum mismatch'
FROM hisops.backup WHERE database_id = 'his_outpatient' AND state = 'failed';

INSERT INTO hisops.change_record (title, requested_by, approved_by, state, requested_at,
                                  started_at, finished_at, failed_at, kind, targets)
VALUES ('add index', 'operator1', 'sysadmin', 'completed', '2026-11-02 10:00', '2026-11-03 02:00',
        '2026-11-03 02:20', NULL, 'sql', '{his_outpatient}'),
       ('work_mem', 'operator1', 'sysadmin', 'rolled_back', '2026-11-09 10:00', '2026-11-10 02:00',
        '2026-11-10 02:30', '2026-11-10 02:15', 'pg_config', '{his_inpatient}'),
       ('upgrade nginx', 'operator2', NULL, 'cancelled', '2026-11-11 10:00', NULL,
        '2026-11-12 10:00', NULL, 'package', '{his-app-local}');
"""


def seed_november(repo) -> None:
    with repo.engine.begin() as conn:
        for statement in SEED_SQL.split(";\n"):
            if statement.strip():
                conn.execute(text(statement))
