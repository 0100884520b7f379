"""数据库备份 Database backup — 第十一条: back up every database nightly, with proof."""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, Param, dag, task
from hisops import timeouts
from hisops.airflow import access, dagkit
from hisops.airflow import backup_tasks as t  # light: drivers are imported inside the tasks

INVENTORY = (
    dagkit.parse_time_inventory()
)  # invalid inventory → import error naming file, field, problem
DATABASES = [d.id for _, d in INVENTORY.all_databases()]


DOC = f"""
### 数据库备份 Database backup (第十一条)

**做什么 What it does** — 每晚 \
`{INVENTORY.schedules.backup}`（{INVENTORY.timezone}）为清单中每个数据库做一次
`pg_dump` 目录格式备份（并行 jobs、压缩级别按清单 `backup:` 策略），数据来自一个导出的快照；
同一快照内记录每张表的行数与表结构指纹，写入 `manifest.json`（每个文件的大小与 \
SHA-256、工具与服务器版本、耗时）。
清单最后写入，然后整个目录原子改名到位；运维目录库登记 running → completed，并更新资产
`hisops://backup/<database_id>`，由此触发恢复演练（备份校验 \
DAG）。可选：静态加密、异地副本（复制后按校验和核对）。

Backs up every database of the inventory (`pg_dump --format=directory`, jobs and compression from \
the
database's `backup:` policy) from an exported snapshot; row counts and a schema fingerprint are \
read in
that same snapshot. Files are checksummed (SHA-256), the manifest is written last, the directory \
is renamed
into place atomically, the catalog row goes running → completed and the asset \
`hisops://backup/<id>` is
updated (this triggers the restore drill). Backups live in `{INVENTORY.backup_storage.path}` as
`<database_id>/<UTC stamp>-<backup id>/{{dump/, manifest.json}}`; they restore with stock \
`pg_restore`
(`pg_restore -l DIR/dump`). Each mapped task is labelled with its database. Pool `hisops_backup`.

Databases now: {", ".join(DATABASES) or "none"}. Trigger manually with `databases` = ["his_emr"] \
to back up
only some (e.g. before maintenance, 第八条).

**失败时怎么办 When it fails** — the failed mapped task's log says which database and why:
- *无法连接 cannot connect*: is the database up? is its Airflow connection right? Then clear the \
task.
- *pg_dump 版本低于服务器 older than the server*: install the matching client tools and set \
`pg_bindir`.
- *备份目录不可写 / 空间不足 not writable / not enough space*: detected before pg_dump starts — \
free space
  (run `backup_retention`), fix permissions or mount, then clear the task.
- *pg_dump 失败 failed* (e.g. the server stopped mid-backup): the catalog row is `failed`, the \
half-written
  directory was removed; fix the cause and clear the task — the retry starts clean.
- *Off-site copy* failed: the local backup is fine; check the offsite SSH connection / path and \
clear it.
Nothing counts as a backup until its manifest is complete; no completed backup for 26 h raises a \
finding
in the daily inspection.
"""


@dag(
    dag_id="db_backup",
    dag_display_name="数据库备份 Database backup",
    description="pg_dump + 清单 manifest + 校验和 checksums, 每库一个资产 one asset per database",
    schedule=CronTriggerTimetable(INVENTORY.schedules.backup, timezone=INVENTORY.timezone),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["hisops", "备份", "backup"],
    default_args=dagkit.default_args(retries=1, retry_minutes=10),
    access_control=access.operator_dag(),
    params={
        "databases": Param(
            [],
            type="array",
            items={"type": "string"},
            title="数据库 Databases",
            description='留空 = 全部 empty = all; e.g. ["his_emr"]',
        )
    },
    doc_md=DOC,
)
def db_backup():
    @task(task_display_name="选择数据库 Select databases")
    def select_databases(params=None) -> list[str]:
        return t.select_databases(params["databases"])

    @task(
        task_display_name="备份数据库 Back up database",
        map_index_template=dagkit.MAP_LABEL,
        pool=dagkit.POOL_BACKUP,
        outlets=[t.backup_alias()],
        execution_timeout=timeouts.DB_BACKUP_TASK,
    )
    def backup(database_id: str, **context) -> dict:
        return t.backup_database_task(database_id, context)

    @task(
        task_display_name="异地副本 Off-site copy",
        map_index_template=dagkit.MAP_LABEL,
        pool=dagkit.POOL_BACKUP,
        execution_timeout=timeouts.DB_BACKUP_TASK,
    )
    def offsite(result: dict, **context) -> dict:
        return t.offsite_copy(result, context)

    @task(task_display_name="汇总 Summary", trigger_rule="all_done", retries=0)
    def summary(selected: list[str], **context) -> dict:
        return t.summarize_run("database", selected, context)

    selected = select_databases()
    results = backup.expand(database_id=selected)
    offsite.expand(result=results)
    results >> summary(selected)


db_backup()
