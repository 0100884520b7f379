"""数据库维护 Database maintenance — 第八条: periodic index optimisation,
backed up before, verified after."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from airflow.timetables.trigger import CronTriggerTimetable
from hisops.airflow import access, dagkit
from hisops.airflow import tune_tasks as t  # light: drivers are imported inside the tasks
from hisops.airflow.tune_approval import MaintenanceApproval

# invalid inventory → import error naming file, field, problem
INVENTORY = dagkit.parse_time_inventory()
DATABASES = [d.id for _, d in INVENTORY.all_databases()]
WINDOW = INVENTORY.maintenance_window
TUNING = INVENTORY.tuning
HOUR, MINUTE = WINDOW.start.split(":")
KINDS = ["drop_invalid", "drop_index", "create_index", "reindex", "vacuum_analyze", "analyze"]

DOC = f"""
### 数据库维护 Database maintenance (第八条)

**做什么 What it does** — 每天在维护窗口 {WINDOW.start}-{WINDOW.end}（{INVENTORY.timezone}）\
开始时运行，也可手动运行（默认**演练**，
只列出计划）。对一个数据库：
1. **计划**：删除中断的 REINDEX CONCURRENTLY 留下的无效索引（`_ccnew`/`_ccold`）；\
删除已批准的未用/重复索引
   （DROP INDEX CONCURRENTLY）；创建已批准的索引提案（CREATE INDEX CONCURRENTLY）；重建膨胀或 \
amcheck 失败的索引
   （REINDEX CONCURRENTLY）；对死元组过多的表 VACUUM (ANALYZE)；统计信息过期的表 \
ANALYZE。计划写在任务日志和 XCom 中，
   执行前可见。
2. **审批**：需要人时，任务在“需要操作 Required actions”中等待：\
须由**系统管理员或以上**且**不是发起人**的人点
   Approve。自己批准自己、角色不够或 Reject → 拒绝，记入审计，不执行任何步骤。定时运行只有清单
   `tuning.pre_approved`（当前：{", ".join(TUNING.pre_approved) or "无 none"}）\
列出的步骤类型可自动批准。
3. **执行**（全部安全条件满足才开始）：在维护窗口内（窗口结束后不再开始新步骤，其余记为跳过）；\
该库有
   {TUNING.backup_max_age_hours:g} 小时内、文件仍在的**已校验备份**（否则停止并说明原因）；\
一次一个对象；
   lock_timeout {TUNING.lock_timeout_ms} ms，拿不到锁就放弃、退避后重试 {TUNING.lock_retries} \
次，仍不行则跳过——绝不在锁队列里
   排队挡住读者；statement_timeout {TUNING.statement_timeout_s} \
s。从不删除或清空表数据，不在清单中的数据库一律拒绝。
4. **记录与复查**：每个对象的前后对比（大小、膨胀估算、索引扫描次数、\
相关热点语句的计划成本与平均耗时）写入运维目录库；
   复查：无无效索引、重建索引 amcheck、该库的巡检数据库检查；审计事件；报告发送给主管。

Daily at the maintenance window's start and on demand (manual runs default to a dry run). Plans \
online steps,
waits for a human approval (≥ 系统管理员, not the requester; scheduled runs auto-approve only
`tuning.pre_approved` kinds), then — inside the window, with a verified backup younger than
{TUNING.backup_max_age_hours:g} h whose files exist — applies one object at a time with a short \
lock_timeout
and retries, records before/after per object, post-checks and reports.

Databases: {", ".join(DATABASES) or "none"}.

**失败时怎么办 When it fails**
- *Apply* failed with "维护被拒绝 maintenance refused": nothing was applied; the message says \
which safeguard
  (outside the window, no fresh verified backup — run db_backup + backup_verification first —, \
approver is
  the requester or below 系统管理员, rejected). Trigger again when it holds.
- A step *skipped* (lock not available / window closed) is recorded; the next run plans it again.
- A step *failed*: read its error in the report/log; an invalid leftover index is dropped by the \
next run.
"""


@dag(
    dag_id="db_maintenance",
    dag_display_name="数据库维护 Database maintenance",
    description=(
        "维护窗口内、备份校验后、经审批的在线索引与清理维护 online index/vacuum maintenance "
        "behind safeguards"
    ),
    schedule=CronTriggerTimetable(f"{int(MINUTE)} {int(HOUR)} * * *", timezone=INVENTORY.timezone),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=12),
    tags=["hisops", "维护", "maintenance"],
    default_args=dagkit.default_args(retries=1, retry_minutes=5),
    # 运维人员 may request (trigger) maintenance; only a 系统管理员 or higher other than the
    # requester may approve it — enforced by the apply task, not by who can see the form.
    access_control=access.operator_dag(),
    params={
        "database_id": Param(
            DATABASES[0] if DATABASES else "",
            type="string",
            enum=DATABASES or [""],
            title="数据库 Database",
        ),
        "dry_run": Param(
            "auto",
            type="string",
            enum=["auto", "yes", "no"],
            title="演练 Dry run",
            description="auto：手动=演练，定时=执行 manual runs preview, scheduled runs apply",
        ),
        "kinds": Param(
            [],
            type="array",
            items={"type": "string", "enum": KINDS},
            title="只做这些步骤 Only these step kinds",
            description="留空 = 全部 empty = all",
        ),
    },
    doc_md=DOC,
)
def db_maintenance():
    @task(task_display_name="维护计划 Plan", retries=0)
    def plan(params=None, **context) -> dict:
        return t.maintenance_plan(params or {}, context)

    approve = MaintenanceApproval(
        task_id="approve",
        task_display_name="审批 Approve",
        subject="数据库维护审批 Approve database maintenance: {{ params.database_id }}",
        body=(
            "{{ ti.xcom_pull(task_ids='plan')['text'] }}\n\n须由系统管理员或以上、"
            "且不是发起人的人批准。"
            "Only a 系统管理员 or higher who did not trigger this run may approve."
        ),
        response_timeout=timedelta(hours=6),
        retries=0,
    )

    @task(task_display_name="执行维护 Apply", retries=0, execution_timeout=timedelta(hours=10))
    def apply(plan: dict, response: dict | None, **context) -> str:
        return t.maintenance_apply(plan, response, context)

    @task(task_display_name="报告 Report")
    def report(path: str, **context) -> dict:
        return t.maintenance_report(path, context)

    planned = plan()
    planned >> approve
    report(apply(planned, approve.output))


db_maintenance()
