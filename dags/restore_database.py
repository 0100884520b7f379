"""数据恢复 Restore database — 第十一条: restore promptly when data is damaged or lost."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from hisops.airflow import access, dagkit
from hisops.airflow import restore_tasks as t  # light: drivers are imported inside the tasks

# an invalid inventory → an import error naming file, field, problem
INVENTORY = dagkit.parse_time_inventory()
DATABASES = [d.id for _, d in INVENTORY.all_databases()]

DOC = f"""
### 数据恢复 Restore database (第十一条)

**做什么 What it does** — 手动运行。把某个数据库的一个备份（编号，或 `latest_verified` =
最近一次恢复演练通过的备份）恢复出来：
- `target = new_database`（默认）：恢复为一个新库（`new_database_name`，留空则为
  `<库>_restored_<备份>_<时间>`，不得已存在），生产库不受任何影响；适合找回误删的数据、先看再决定。
- `target = overwrite`：覆盖生产库。必须在 `confirm` 栏输入数据库标识（如 `his_emr`），
  且触发者须为**系统管理员**或**超级管理员**，否则拒绝（并记入审计）。步骤：校验备份文件 →
  恢复到暂存库 `hisops_restore_…` → 对生产库做一次安全备份（登记在运维目录库）→
  拒绝并断开生产库连接，在一个事务里把生产库改名为 `<库>_before_restore_<时间>`、
  暂存库改名为生产库名（所有者、库级权限、连接上限照搬）。
  生产库从不处于“恢复了一半”的状态；旧库保留，确认无误后由运维人员删除。

谁、何时、恢复了什么、结果（包括被拒绝的尝试）都写入运维目录库的审计事件。
恢复整台服务器到某个时间点（pgBackRest）见 DAG `restore_pitr`。

Manual only. Restores one backup (an id, or `latest_verified`) of one database either into a NEW
database (default; production untouched) or OVER production (`overwrite`: needs `confirm` = the
database id and the triggering user in 系统管理员 / 超级管理员; else refused and audited).
Overwrite restores into a staging database first, takes a catalogued safety backup of
production, then swaps the two names in one transaction (owner, database privileges, connection
limit carried over). The old production database is kept as `<name>_before_restore_<time>`.
Stop the applications using the database before an overwrite: writes after the safety backup are
lost. The role of the triggering user is read from the Airflow metadata DB through connection
`hisops_airflow_db` (task processes may not use Airflow's ORM). A whole server to a point in
time (pgBackRest): DAG `restore_pitr`.

Databases: {", ".join(DATABASES) or "none"}.

**失败时怎么办 When it fails**
- *Authorize* failed = refused (see the log: no confirmation, role too low, unknown/failed backup,
  name taken): nothing was touched; fix the form and trigger again.
- *Restore to staging* failed: production untouched; the staging database is dropped by
  *Drop staging*. A checksum error means the backup is damaged — choose another backup
  (`latest_verified`).
- *Safety backup* failed: production untouched (e.g. no space in backup storage) — fix and clear
  the task.
- *Switch* failed: the swap is one transaction — production keeps its name and data; connections
  are allowed again. Read the error (e.g. sessions that would not end) and clear the task.
"""


@dag(
    dag_id="restore_database",
    dag_display_name="数据恢复 Restore database",
    description=(
        "从备份恢复：新库或覆盖生产（需确认与系统管理员角色）"
        "restore to a new database or over production"
    ),
    schedule=None,
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["hisops", "恢复", "restore"],
    default_args=dagkit.default_args(retries=1, retry_minutes=2),
    access_control=access.admin_dag(),
    params={
        "database_id": Param(
            DATABASES[0] if DATABASES else "",
            type="string",
            enum=DATABASES or [""],
            title="数据库 Database",
        ),
        "backup_id": Param(
            "latest_verified",
            type=["string", "integer"],
            minimum=1,
            pattern="^(latest_verified|[1-9][0-9]*)$",
            title="备份 Backup",
            description="备份编号或 latest_verified a backup id, or latest_verified",
        ),
        "target": Param(
            "new_database",
            type="string",
            enum=["new_database", "overwrite"],
            title="恢复到 Restore to",
            description="new_database（默认）或 overwrite（覆盖生产）",
        ),
        "new_database_name": Param(
            None,
            type=["null", "string"],
            pattern="^[a-z_][a-z0-9_]{0,62}$",
            title="新库名 New database name",
            description="留空自动命名 empty = derived",
        ),
        "confirm": Param(
            None,
            type=["null", "string"],
            title="确认 Confirm",
            description="覆盖时输入数据库标识 type the database id to overwrite it",
        ),
    },
    doc_md=DOC,
)
def restore_database():
    @task(task_display_name="检查授权 Authorize", retries=0)
    def authorize(params=None, **context) -> dict:
        return t.authorize_restore(params, context)

    @task(
        task_display_name="恢复到暂存库 Restore to staging",
        execution_timeout=timedelta(hours=8),
        retries=0,
    )
    def stage(plan: dict, **context) -> dict:
        return t.stage_restore(plan, context)

    @task(task_display_name="安全备份 Safety backup", execution_timeout=timedelta(hours=8))
    def safety_backup(staged: dict, **context) -> int | None:
        return t.safety_backup(staged, context)

    @task(task_display_name="切换 Switch", retries=0)
    def switch(staged: dict, safety_backup_id: int | None, **context) -> dict:
        return t.switch_restore(staged, safety_backup_id, context)

    @task(task_display_name="删除暂存库 Drop staging")
    def drop_staging(plan: dict, **context) -> bool:
        return t.drop_restore_staging(plan, context)

    plan = authorize()
    staged = stage(plan)
    done = switch(staged, safety_backup(staged))
    done >> drop_staging(plan).as_teardown(setups=plan)


restore_database()
