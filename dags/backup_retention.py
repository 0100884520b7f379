"""备份保留清理 GFS backup retention — 第十一条 "retention per policy", tied to verified state."""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, Param, dag, task
from hisops.airflow import access, dagkit
from hisops.airflow import backup_tasks as t

INVENTORY = dagkit.parse_time_inventory()
RETENTION_CRON = "0 6 * * *"  # after the night's backups (01:00) and their restore drills

DOC = f"""
### 备份保留清理 GFS backup retention

**做什么 What it does** — 每天 06:00（{INVENTORY.timezone}）按每个数据库的 `backup:` \
策略（主机文件备份按全局
`retention:`）保留最近 N 天每天一份、N 周每周一份、N \
月每月一份（GFS），其余删除。安全规则优先于策略：
只有存在**更新的已校验**备份时才删除；最新的已校验备份永不删除；运行中的备份不动。每次删除都记入运维目录库
（删除原因）和审计日志；配置了异地副本时一并删除异地副本。

Keeps, per database (policy `backup:` keep_daily/weekly/monthly) and per host (global \
`retention:`), the newest
backup of each of the last N days, weeks and months; deletes the rest — but **only when a newer \
backup is
verified**; the last verified backup is never deleted, whatever the policy says; running backups \
are never
touched. Every deletion is recorded in the catalog with its reason and as an audit event.

**对账 Reconcile（每天，先于计划 daily, before the plan）** — \
目录库与存储双向核对（逻辑备份、文件备份、
pgBackRest 物理备份）：目录库中有记录但文件已不在的备份标记为 `missing`（审计、事件 \
`backup.storage`、通知主管），
此后永不算作“最近已校验备份”；存储中有但目录库不认识的备份目录记为事件 \
`backup.orphan`（不会自动删除）。
保留计划在对账之后重新计算：最新的**可恢复**已校验备份永不删除。
Catalog and storage are compared both ways for both tiers: catalogued backups whose files vanished \
become
`missing` (audit event, incident `backup.storage`, supervisors notified) and never again count as \
last
verified; backup directories the catalog does not know raise `backup.orphan` (never deleted \
automatically).
The plan is computed after that, so the newest *restorable* verified backup is the protected one.

**dry_run** — `auto` (default): scheduled runs delete, a run triggered by hand only previews (an \
operator
clicking *Trigger* sees the plan first and must choose `no` to delete now); `yes`: preview only; \
`no`: delete.
Hospitals expect unattended housekeeping (a full backup disk makes the next backup fail) *and* no \
surprise
deletions from a click — `auto` gives both. The plan (every backup: keep/delete and why) is in the \
log of
*Plan*, and the audit event `backup_retention` holds planned and deleted ids.

**失败时怎么办 When it fails** — *Plan* fails: the catalog (`hisops_catalog`) is unreachable; \
nothing was
deleted. *Apply* fails part-way: deletions done so far are recorded (catalog + audit); "refusing \
to delete"
means a catalog path does not point at a backup directory under the storage root — check the \
catalog row,
never delete backups by hand without recording them. Off-site deletion errors are logged and \
audited; remove
that copy by hand.
"""


@dag(
    dag_id="backup_retention",
    dag_display_name="备份保留清理 GFS backup retention",
    description="GFS 保留，仅在有更新的已校验备份时删除 "
    "deletes only when a newer backup is verified",
    schedule=CronTriggerTimetable(RETENTION_CRON, timezone=INVENTORY.timezone),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["hisops", "备份", "backup", "retention"],
    default_args=dagkit.default_args(retries=1, retry_minutes=10),
    access_control=access.operator_dag(),
    params={
        "dry_run": Param(
            "auto",
            type="string",
            enum=list(t.DRY_RUN_CHOICES),
            title="预演 Dry run",
            values_display={
                "auto": "自动 auto — 定时运行删除, 手动运行只预演 "
                "scheduled deletes, manual previews",
                "yes": "预演 yes — 只列出计划 preview only",
                "no": "执行 no — 立即删除 delete now",
            },
        )
    },
    doc_md=DOC,
)
def backup_retention():
    @task(task_display_name="对账 Reconcile catalog and storage")
    def reconcile(**context) -> dict:
        return t.reconcile_storage(context)

    @task(task_display_name="制定计划 Plan")
    def plan(**context) -> dict:
        return t.retention_plan(context)

    @task(task_display_name="执行清理 Apply", retries=0)
    def apply(planned: dict, **context) -> dict:
        return t.retention_apply(planned, context["params"]["dry_run"], context)

    reconcile() >> apply(plan())


backup_retention()
