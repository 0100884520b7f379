"""性能优化评估 Performance review — 第九条: periodic performance optimisation, measured."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from airflow.timetables.trigger import CronTriggerTimetable
from hisops.airflow import access, dagkit
from hisops.airflow import tune_tasks as t  # light: drivers are imported inside the tasks

# invalid inventory → import error naming file, field, problem
INVENTORY = dagkit.parse_time_inventory()
DATABASES = [d.id for _, d in INVENTORY.all_databases()]
TUNING = INVENTORY.tuning

DOC = f"""
### 性能优化评估 Performance review (第九条)

**做什么 What it does** — 每周（清单 `tuning.review`：`{TUNING.review}`）及随时手动运行，\
逐个数据库**只读**评估
（statement_timeout 30 s，lock_timeout 2 s，只读事务）：
- pg_stat_statements：按总耗时、平均耗时、调用次数排列的语句，\
与上次评估相比变慢的语句（快照以增量存入运维目录库，
  从不重置 pg_stat_statements）；未启用时给出需要的设置；
- 索引建议：慢语句（平均 ≥ {TUNING.slow_mean_ms:g} ms 且调用 ≥ {TUNING.slow_min_calls} 次）用 \
hypopg 假设索引验证，
  成本下降 ≥ {TUNING.advice_min_drop_pct:g}% 才建议，已有相同前导列的 btree \
索引则不建议；每条建议附语句、前后计划成本、
  预计每日节省时间；
- 未使用索引（≥ {TUNING.unused_index_min_mb:g} MB，不支撑主键/唯一/排他约束）、重复索引、无效索引、\
表与索引膨胀趋势、
  自动清理滞后、大表顺序扫描；
- 建议成为运维目录库中的**调优提案**（proposed → approved → applied → measured / rejected），
  用 `hisops proposals list|approve|reject` 查看和审批（审计）；报告（HTML）发送给主管。

Weekly (`tuning.review`) and on demand, per database, read-only. Top statements from \
pg_stat_statements with
regressions vs the previous review (deltas stored in the catalog; never reset); index advice \
proven with
hypopg (suggested only when the plan cost drops ≥ {TUNING.advice_min_drop_pct:g} % and no existing \
btree has
the same leading columns), unused / redundant / invalid indexes, bloat trends, autovacuum lag, seq \
scans on
big tables. Suggestions become proposals (approve with `hisops proposals approve ID --by NAME`); \
db_maintenance
applies approved ones in the maintenance window. The report is mailed to the supervisors.

Databases: {", ".join(DATABASES) or "none"}.

**失败时怎么办 When it fails**
- *Review database* failed for one database: the others still report. An unreachable database is a \
finding
  in the report (check the connection); a timeout means the statistics views are slow — rerun \
off-peak.
- "pg_stat_statements 未加载": add `shared_preload_libraries = 'pg_stat_statements'`, restart \
PostgreSQL,
  `CREATE EXTENSION pg_stat_statements` in the database.
- "未安装 hypopg": install `postgresql-15-hypopg` and, as a superuser, `CREATE EXTENSION hypopg` \
in the
  database (the review is read-only and never creates extensions itself).
"""


@dag(
    dag_id="performance_review",
    dag_display_name="性能优化评估 Performance review",
    description=(
        "慢语句、索引建议（hypopg 验证）、索引健康与膨胀 slow statements, proven index advice, "
        "index health"
    ),
    schedule=CronTriggerTimetable(TUNING.review, timezone=INVENTORY.timezone),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    tags=["hisops", "性能", "performance"],
    default_args=dagkit.default_args(retries=1, retry_minutes=5),
    access_control=access.operator_dag(),
    params={
        "databases": Param(
            [],
            type="array",
            items={"type": "string", "enum": DATABASES or [""]},
            title="只评估这些数据库 Only these databases",
            description="留空 = 全部 empty = all",
        )
    },
    doc_md=DOC,
)
def performance_review():
    @task(task_display_name="选择数据库 Databases")
    def databases(params=None) -> list[str]:
        return t.review_targets(params or {})

    @task(
        task_display_name="评估数据库 Review database",
        map_index_template=dagkit.MAP_LABEL,
        execution_timeout=timedelta(minutes=30),
    )
    def review(database_id: str, **context) -> str:
        return t.review_database(database_id, context)

    @task(task_display_name="报告 Report", trigger_rule="all_done")
    def report(paths: list[str], **context) -> dict:
        return t.publish_review(paths, context)

    report(review.expand(database_id=databases()))


performance_review()
