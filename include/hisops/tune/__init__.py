"""性能优化与数据库维护 Performance review (第九条) and database maintenance (第八条).

- :mod:`.statements` — pg_stat_statements: top queries, deltas between reviews, regressions;
- :mod:`.advisor` — index advice proven with hypothetical indexes (hypopg);
- :mod:`.health` — unused / redundant / invalid indexes, bloat estimates, autovacuum lag, seq scans;
- :mod:`.review` — the performance_review service (records, proposals, report, mail);
- :mod:`.proposals` — proposal life cycle (proposed → approved → applied → measured | rejected);
- :mod:`.maintenance` — plan and apply db_maintenance steps behind :mod:`hisops.safeguards`.

Pure domain: no Airflow import; light at import (drivers inside functions).
"""
