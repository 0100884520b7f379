"""备份校验 / 恢复演练 Backup verification — 第十一条 + 等保 2.0: a backup nobody restored is a
hope."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from hisops.airflow import access, dagkit
from hisops.airflow import verify_tasks as t  # light: GX and drivers are imported inside the tasks

INVENTORY = (
    dagkit.parse_time_inventory()
)  # invalid inventory → import error naming file, field, problem
DATABASES = [d.id for _, d in INVENTORY.all_databases()]

DOC = f"""
### 备份校验 / 恢复演练 Backup verification (restore drill)

**做什么 What it does** — 每当数据库备份完成（资产 `hisops://backup/<database_id>` \
更新）就自动做一次恢复演练；
也可手动运行，填 `backup_id` 演练指定备份（留空 = 每个数据库最新的、尚未演练的备份）。每次演练：
1. 重新校验每个备份文件的大小与 SHA-256（加密备份先解密）；
2. 用 `pg_restore --jobs` 恢复到临时演练库 \
`hisops_drill_<库>_<备份>_<时间>_<随机>`（名称不可能与生产库混淆，
   删除时按名称规则把关）；恢复用时即实测 RTO；
3. 在恢复出的库上运行 Great Expectations \
检查：每表行数等于清单记录、表集合与列与备份一致、主键唯一、
   关键列非空（清单 `critical_columns`）、外键无孤儿行、清单中按表配置的检查；\
再与备份的表结构逐表比对，
   并对每个 btree 索引运行 `amcheck`；
4. 把 GX Data Docs 页面作为演练证据保存到 \
`{INVENTORY.reports.path}/verification/<库>/<时间>-backup<编号>/`
   （目录 0700、文件 0600），路径写入运维目录库；
5. 无论成功失败都删除演练库（任务内 try/finally，另有清理任务兜底）。

成功 → 备份标记为 verified（此后才算“最近已校验备份”，维护和保留策略依赖它）；
失败 → 备份标记为 failed（备份本身或其数据有问题时）、打开事件 `backup.verification`、通知主管。

Runs whenever a database backup completes (asset-triggered; it drills every database's newest \
backup that
is still `completed`, i.e. not drilled yet), or by hand with `backup_id`. Re-checks every
file's checksum (decrypting encrypted backups), restores into a scratch database with `pg_restore \
-j`
(its duration is the measured RTO), runs the Great Expectations suite inside PostgreSQL (row \
counts equal
the manifest's, tables and columns equal the backup's, primary keys unique, critical columns not \
null,
foreign keys without orphans, per-table checks from the inventory), compares the restored schema \
with the
manifest's and runs `amcheck` on every btree index. The GX Data Docs are kept as the drill's \
evidence.
`mode = fast` (default) skips the data scan for keys PostgreSQL already guarantees (a valid \
primary key
index, a validated foreign key — pg_restore built and checked them); `deep` always scans. Pool
`hisops_verification` (one drill at a time). Scratch databases go to connection `hisops_drill` if \
defined,
else to the database's own server.

**物理备份 Physical backups (PITR drill)** — a completed pgBackRest backup (asset \
`hisops://pitr/<server>`)
is drilled too: `pgbackrest restore` into a scratch data directory (never the production one) on a \
free
loopback port, recovery to the target (`pitr_target`: by default a named restore point hisops \
creates on
production between two heartbeat rows — the copy must contain the first and not the second, which \
PROVES the
point reached), the same GX suite and amcheck for every inventory database on that server, then
`pgbackrest verify`. The scratch cluster is always stopped and removed. Recovery that stops early \
names the
missing or corrupt WAL segment; a corrupt repository file is named by `pgbackrest verify`.

Databases now: {", ".join(DATABASES) or "none"}.

**失败时怎么办 When it fails** — the *Verdict* names database, backup and the first problem; the \
evidence page
(`evidence_path` in the catalog) and the *Restore drill* log list all of them:
- *校验和不符 / 文件缺失 checksum mismatch / missing file*: the backup is damaged — take a new \
backup now
  (trigger `db_backup` for that database); the damaged one is marked failed and never restored from.
- *行数 / 列 / 表集合不符 row count / columns / tables differ*: the restored copy is not what was \
backed up —
  a new backup, then check storage and the pg_dump log of that backup.
- *关键列出现空值 / 清单检查失败 critical column NULL / inventory check failed*: production data \
quality —
  tell the system's owner; the backup is faithful but not a good restore source.
- *索引损坏 index corrupt (amcheck)*: rare; report it, take a new backup.
- fault `infrastructure` (cannot connect to the scratch server, disk full) or `configuration` (no \
encryption
  key, invalid inventory expectation): the backup's state is left alone; fix the cause, then run \
this DAG
  with `backup_id` to drill it again.
A killed run may leave a `hisops_drill_*` database: the *Drop scratch databases* task of the next \
run
drops leftovers older than 12 h.
"""


@dag(
    dag_id="backup_verification",
    dag_display_name="备份校验/恢复演练 Backup verification",
    description="恢复演练：校验和、恢复到临时库、GX 检查、amcheck、证据 "
    "restore drill with evidence",
    schedule=t.verification_schedule(INVENTORY),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["hisops", "备份", "恢复演练", "verification"],
    default_args=dagkit.default_args(retries=1, retry_minutes=5),
    access_control=access.operator_dag(),
    params={
        "backup_id": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="备份编号 Backup id",
            description="留空 = 每库最新的未演练备份; empty = every database's newest "
            "backup not drilled yet",
        ),
        "pitr_target": Param(
            "auto",
            type="string",
            title="时间点目标 PITR target (physical backups)",
            description="auto = hisops 现在创建还原点并证明到达 "
            "a restore point hisops creates now; "
            "latest; time:2026-12-01T10:00:00+08:00; name:<restore point>",
        ),
        "mode": Param(
            "fast",
            type="string",
            enum=["fast", "deep"],
            title="检查深度 Depth",
            description="fast: 约束已保证的键不再全表扫描 keys guaranteed by constraints are not "
            "rescanned; deep: 总是全表扫描 always scan",
        ),
    },
    doc_md=DOC,
)
def backup_verification():
    @task(task_display_name="选择备份 Plan drills")
    def plan(params=None, **context) -> list[dict]:
        return t.plan_drills(params["backup_id"], context)

    @task(
        task_display_name="恢复演练 Restore drill",
        map_index_template=dagkit.MAP_LABEL,
        pool=dagkit.POOL_VERIFICATION,
        execution_timeout=timedelta(hours=8),
        retries=0,
    )
    def drill(job: dict, **context) -> dict:
        return t.run_drill_task(job, context)

    @task(task_display_name="记录结果 Record result", map_index_template=dagkit.MAP_LABEL)
    def record(result: dict, **context) -> dict:
        return t.record_drill(result, context)

    @task(task_display_name="删除演练库 Drop scratch databases")
    def drop_scratch(jobs: list[dict]) -> list[str]:
        return t.drop_scratch(jobs)

    @task(task_display_name="结论 Verdict", retries=0)
    def verdict(records: list[dict]) -> str:
        return t.verification_verdict(records)

    jobs = plan()
    results = drill.expand(job=jobs)
    verdict(record.expand(result=results))
    results >> drop_scratch(jobs).as_teardown(setups=jobs)


backup_verification()
