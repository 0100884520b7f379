"""变更管理 Change request (第十条) — assess, back up, approve, apply
in the window, verify, revert."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from hisops.airflow import access, dagkit
from hisops.airflow import (
    change_tasks as t,
)  # light: drivers, paramiko, jinja2 load inside the tasks
from hisops.airflow.change_approval import ChangeApproval

INVENTORY = dagkit.parse_time_inventory()  # local file only
DATABASES = [d.id for _, d in INVENTORY.all_databases()]
HOSTS = [h.id for _, h in INVENTORY.all_hosts()]
APPROVAL_TIMEOUT = timedelta(hours=12)
WINDOW = f"{INVENTORY.maintenance_window.start}-{INVENTORY.maintenance_window.end}"

DOC = f"""
### 变更管理 Change request (第十条)

**做什么 What it does** — 安装、升级和配置变更按第十条执行：申请（谁、为什么、预期影响）→ \
兼容性评估（版本、磁盘、复制状态、
SQL 在回滚的事务中试运行（lock_timeout）、软件包模拟安装）→ 每个受影响数据库须有 24 \
小时内的已校验备份 → 由**系统管理员及以上、
且不是申请人**的人审批（Airflow 审批任务，正文含评估结果，\
{APPROVAL_TIMEOUT.total_seconds() / 3600:g} 小时超时即取消）→ 在维护窗口
（{WINDOW}，{INVENTORY.timezone}）内实施 → 验证（验证脚本、该数据库的巡检检查）→ \
失败则回退并再次验证 → 记录结果。
每一步都写入运维目录库（change_step）和审计记录；失败的变更开立事件，回退失败为严重事件并通知主管；\
每个变更生成一页记录
（`reports.path/changes/change-<id>.html`，也收入当月等保证据包）。
Installs, upgrades and configuration changes per Art. 10: request → compatibility assessment → \
fresh verified
backup of every affected database → approval by a 系统管理员 or higher who is not the requester \
(this DAG's
*审批 Approve* task, in Airflow's Required Actions; it times out after {APPROVAL_TIMEOUT}) → apply \
inside the
maintenance window → verify → revert and verify again on failure → outcome. Every step is a \
catalog row and an
audit event; a failed change opens an incident, a failed revert a critical one and the supervisors \
are told.

**种类 Kinds** (`kind`):
- `sql`: `deploy_sql` / `verify_sql` / `revert_sql` pasted, or `sql_folder` = a folder \
`changes/<name>/` of the
  repository with `deploy.sql`, `verify.sql`, `revert.sql` (sqitch-style); checksums recorded.
- `pg_config`: `parameter` → `value` by `ALTER SYSTEM`; `pg_file_settings` is checked before
  `pg_reload_conf()`. A parameter that then shows `pending_restart` gets a planned restart
  (`pg_ctl restart -m fast` on the server's host, as the data directory's owner; recorded and
  audited as step *计划重启 restart*) only when `restart_allowed` is set and the window is open, and
  only on the server of the database (`server:` in the inventory, its `data_directory` equal to
  the server's own); the new value is verified after it. Otherwise the change ends
  `pending_restart` (written, not yet in effect) and the requester is told.
- `package`: `package` (and `version`) on `host_id` with apt/yum: simulated first, versions \
before/after recorded.
- `config_file`: `path` on `host_id` replaced by `content`; the old file is backed up (checksum) \
first.

**失败时怎么办 When it fails** — the failed task's log and the change's page say which step \
stopped it:
- *兼容性评估 Assess* failed: the dry run/simulation failed — fix the scripts or the package name \
and request again.
- *变更前备份 Backup* failed: no verified backup younger than 24 h — run `db_backup` (its drill \
verifies it), then
  request again.
- *审批 Approve* timed out or was rejected, or *审批检查 Check approval* refused (the approver is \
the requester or
  below 系统管理员): nothing was applied; request again with a proper approver.
- *实施 Apply* failed outside the window: clear the task inside the window (the change stays \
approved).
- Outcome `rolled_back`: the change was reverted and the target verified again; see the incident.
- Outcome `failed_revert`: a critical incident — the target may be half-changed; restore from the \
backup named on
  the change's page (`restore_database`) after looking at the apply/revert log.
"""

TEXT = {"type": ["null", "string"]}


@dag(
    dag_id="change_request",
    dag_display_name="变更管理 Change request",
    description="第十条 安装、升级和配置变更：评估、备份、审批、窗口内实施、验证、失败回退",
    schedule=None,
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=3,
    dagrun_timeout=timedelta(hours=36),
    tags=["hisops", "变更", "change"],
    default_args=dagkit.default_args(retries=1, retry_minutes=2),
    access_control=access.admin_dag(),
    params={
        "kind": Param(
            "sql",
            type="string",
            enum=["sql", "pg_config", "package", "config_file"],
            title="种类 Kind",
        ),
        "title": Param("", type="string", minLength=1, title="标题 Title"),
        "reason": Param("", type="string", minLength=1, title="原因 Reason"),
        "impact": Param("", type="string", minLength=1, title="预期影响 Expected impact"),
        "database_id": Param(
            DATABASES[0] if DATABASES else None,
            type=["null", "string"],
            enum=[*DATABASES, None],
            title="数据库 Database (sql, pg_config)",
        ),
        "host_id": Param(
            None,
            type=["null", "string"],
            enum=[*HOSTS, None],
            title="主机 Host (package, config_file)",
        ),
        "sql_folder": Param(None, **TEXT, title="SQL 目录 changes/<folder>"),
        "deploy_sql": Param(None, **TEXT, title="部署脚本 deploy.sql", format="multiline"),
        "verify_sql": Param(None, **TEXT, title="验证脚本 verify.sql", format="multiline"),
        "revert_sql": Param(None, **TEXT, title="回退脚本 revert.sql", format="multiline"),
        "parameter": Param(None, **TEXT, title="参数 Parameter (pg_config)"),
        "value": Param(None, **TEXT, title="值 Value (pg_config)"),
        "restart_allowed": Param(False, type="boolean", title="允许窗口内重启 Restart allowed"),
        "package": Param(None, **TEXT, title="软件包 Package"),
        "version": Param(None, **TEXT, title="版本 Version (optional)"),
        "path": Param(None, **TEXT, title="文件路径 File path (config_file)"),
        "content": Param(None, **TEXT, title="新内容 New content", format="multiline"),
    },
    doc_md=DOC,
)
def change_request():
    @task(task_display_name="申请 Request", retries=0)
    def request(**context) -> int:
        return t.request(context)

    @task(task_display_name="兼容性评估 Assess", retries=0)
    def assess(change_id: int, **context) -> dict:
        return t.assess(context, change_id)

    @task(task_display_name="变更前备份 Backup check", retries=0)
    def backup(change_id: int, assessed: dict, **context) -> dict:
        return t.backup(context, change_id)

    @task(task_display_name="审批内容 Approval text")
    def approval_text(change_id: int, backed_up: dict) -> dict:
        return t.approval_text(change_id)

    text = "ti.xcom_pull(task_ids='approval_text')"
    approve = ChangeApproval(
        task_id=t.APPROVAL_TASK,
        task_display_name="审批 Approve",
        subject="{{ " + text + "['subject'] }}",
        body="{{ " + text + "['body'] }}",
        response_timeout=APPROVAL_TIMEOUT,
        retries=0,
    )

    @task(task_display_name="审批检查 Check approval", retries=0)
    def check_approval(change_id: int, **context) -> dict:
        return t.check_approval(context, change_id)

    @task(
        task_display_name="实施与验证 Apply and verify",
        retries=0,
        execution_timeout=timedelta(hours=4),
    )
    def apply(change_id: int, approved: dict, **context) -> dict:
        return t.apply(context, change_id)

    @task(task_display_name="记录结果 Outcome", trigger_rule="all_done")
    def outcome(change_id: int | None, applied: dict | None = None, **context) -> dict:
        return t.outcome(context, change_id)

    change_id = request()
    prepared = approval_text(change_id, backup(change_id, assess(change_id)))
    prepared >> approve
    approved = check_approval(change_id)
    approve >> approved
    outcome(change_id, apply(change_id, approved))


change_request()
