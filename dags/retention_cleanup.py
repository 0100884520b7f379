"""保留清理 Retention cleanup — 第八条 "system file cleanup": host files,
hisops' records, Airflow metadata."""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, Param, dag, task
from hisops.airflow import access, dagkit
from hisops.airflow import cleanup_tasks as t
from hisops.cleanup.schedule import cron_in_window

INVENTORY = dagkit.parse_time_inventory()
CRON = cron_in_window(INVENTORY.maintenance_window)

DOC = f"""
### 保留清理 Retention cleanup

**做什么 What it does** — 每天维护窗口内\
（{INVENTORY.maintenance_window.start}–{INVENTORY.maintenance_window.end}，
{INVENTORY.timezone}，cron `{CRON}`）执行：
1. **主机文件**：按清单中每台主机的 `cleanup:` 规则（路径通配、早于 N 天、大于、每目录保留最新 N \
个、删除或 gzip 压缩）
   清理日志和临时文件。受保护路径（数据库数据目录——清单 `data_directories` 以及服务器 `SHOW \
data_directory`、
   备份存储与 pgBackRest 仓库、报告与证据、`clinical_paths` \
临床数据）任何规则都不得触及；符号链接不跟随；
   正在写入的文件跳过。每个删除/压缩的文件（路径、大小、修改时间）记入运维目录库。
2. **运维目录库记录**：巡检结果与指标样本超过保留期先汇总为每日聚合（长期保留，趋势与 KPI \
仍可用）再分批删除；
   已关闭事件、旧报告、演练证据按 `record_retention:` 清理。审计记录至少保留 180 \
天，且只有在哈希链校验通过的导出
   之后才会清理（目前尚无该导出：从不清理审计记录）。
3. **Airflow 元数据与任务日志**：通过子进程运行 `airflow db clean`（连接 \
`hisops_airflow_db`），保留每个 DAG 最近一次
   定时运行；本地任务日志早于 N 天删除。
4. **报告**：中文报告（每台主机每条规则释放的空间、每张表删除的行数、跳过项及原因）；\
规则触及受保护路径、
   或文件系统高于警告阈值而清理未释放空间时通知主管。

Daily in the maintenance window: host file rules (protected paths never reached, symlinks not \
followed, files open
for writing skipped, every file recorded), roll-ups then batched pruning of hisops' own records \
(audit events: at
least 180 days and never without a verified hash-chain export — none exists yet, so never), \
Airflow metadata through
`airflow db clean` in a child process (latest scheduled run of each DAG kept) and old task log \
files; a Chinese
report; a notification when a protected path was hit or a filesystem above its warn level got \
nothing freed.

**dry_run 预演** — `auto`（默认）：维护窗口内的定时运行执行清理；手动触发、\
以及在窗口外开始的定时运行（例如刚取消暂停时
Airflow 立即补跑的上一周期）只预演（列出将删除的每个文件与每张表的行数，不删除任何东西）；`yes`：\
只预演；`no`：立即执行。
`auto` (default): a scheduled run inside the maintenance window cleans; runs started by hand, and \
scheduled runs that
start outside the window (Airflow runs the latest past interval at once when the DAG is unpaused), \
only preview;
`yes`: preview; `no`: clean now. The preview lists exactly what a real run would do (task log of \
*主机文件*).

**失败时怎么办 When it fails** — 每一步的结果都在报告和运维目录库（`cleanup_step`）中：\
主机不可达只影响该主机，
其他主机照常清理；`protected` 表示规则在运行时触及受保护路径（例如服务器报告的数据目录）\
——修改规则，不要手工删除；
*Airflow 元数据* 失败多为 `hisops_airflow_db` 权限不足（需要的授权见 \
README）；目录库步骤失败可直接重跑（幂等）。
A host that cannot be reached fails only its own rules; `protected` means a rule reached a \
protected path at run time
(fix the rule, never delete by hand); an *Airflow metadata* failure is usually missing grants on \
`hisops_airflow_db`
(README lists them); catalog steps are idempotent — clear the task to rerun it.
"""


@dag(
    dag_id="retention_cleanup",
    dag_display_name="保留清理 Retention cleanup",
    description=(
        "主机文件、运维记录、Airflow 元数据的保留清理 host files, hisops records, Airflow metadata"
    ),
    schedule=CronTriggerTimetable(CRON, timezone=INVENTORY.timezone),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["hisops", "清理", "cleanup", "retention"],
    default_args=dagkit.default_args(retries=1, retry_minutes=10),
    access_control=access.operator_dag(),
    params={
        "dry_run": Param(
            "auto",
            type="string",
            enum=list(t.DRY_RUN_CHOICES),
            title="预演 Dry run",
            values_display={
                "auto": (
                    "自动 auto — 定时运行清理, 手动运行只预演 scheduled cleans, manual previews"
                ),
                "yes": "预演 yes — 只列出将做的操作 preview only",
                "no": "执行 no — 立即清理 clean now",
            },
        )
    },
    doc_md=DOC,
)
def retention_cleanup():
    @task(task_display_name="开始 Start")
    def start(**context) -> dict:
        return t.start(context)

    @task(task_display_name="主机文件 Host files", retries=0)
    def host_files(started: dict, **context) -> dict:
        return t.host_files(started, context)

    @task(task_display_name="运维目录库记录 hisops records")
    def catalog_records(started: dict, **context) -> dict:
        return t.catalog_records(started, context)

    @task(task_display_name="Airflow 元数据 Airflow metadata")
    def airflow_metadata(started: dict, **context) -> dict:
        return t.airflow_metadata(started, context)

    @task(task_display_name="任务日志 Task logs", retries=0)
    def task_logs(started: dict, **context) -> dict:
        return t.task_logs(started, context)

    @task(task_display_name="报告 Report", trigger_rule="all_done")
    def report(started: dict, **context) -> dict:
        return t.report(started, context)

    started = start()
    steps = [
        host_files(started),
        catalog_records(started),
        airflow_metadata(started),
        task_logs(started),
    ]
    steps >> report(started)


retention_cleanup()
