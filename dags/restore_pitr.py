"""时间点恢复 Point-in-time restore — 第十一条: restore to a moment, not only to last night."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task
from hisops.airflow import access, dagkit
from hisops.airflow import restore_tasks as t  # light: drivers are imported inside the tasks

INVENTORY = dagkit.parse_time_inventory()
SERVERS = [srv.id for _, srv in INVENTORY.all_servers() if srv.pitr]

DOC = f"""
### 时间点恢复 Point-in-time restore (pgBackRest, 第十一条)

**做什么 What it does** — 手动运行。从服务器的 pgBackRest 仓库，把整台 PostgreSQL 服务器恢复到
一个时间点，恢复为一个**新的集群**（新数据目录、空闲端口、只监听 127.0.0.1），生产库不受任何影响：
- `target = latest`：恢复到仓库中已归档的最后一个 WAL；
- `target = time`：`target_value` 填带时区的时间，如 `2026-12-01 09:30:00+08:00`
  （不带时区会被拒绝）；
- `target = name`：`target_value` 填还原点名称（`pg_create_restore_point` 创建的）。

备份集：默认取在目标时间之前结束的、最近一个**已演练通过**（verified）且仓库中仍在的物理备份；
也可在 `backup_id` 填备份编号（completed 或 verified）。必须在 `confirm` 栏输入服务器标识
（如 `pg-main`，一字不差），且触发者须为**系统管理员**或**超级管理员**，否则拒绝并记入审计。
新集群的 WAL 归档是关闭的（不会向生产仓库推送 WAL）。若 hisops 的心跳记录（`hisops_pitr.heartbeat`，
由恢复演练写入）恰好位于目标点两侧，新集群必须含目标点之前的一条、不含之后的一条，否则恢复判为失败并删除新集群。

Manual only. Restores a whole server from its pgBackRest repository to `latest`, a `time` (with its
zone) or a named restore point into a NEW cluster: a new data directory
`<restore root>/hisops_restored_<server>_<time>_<hex>` (restore root: `pitr.restore_path`, else
`restores` beside hisops' pgBackRest configuration), a free port (or `port`), loopback only,
archiving off. Production and its data directory are never touched. Needs `confirm` = the server
id, typed exactly, and a triggering user in 系统管理员 / 超级管理员; otherwise refused and audited.
Request, refusal, success and failure are audit events (`restore_pitr_authorized`, `restore_pitr`).
The run's result (XCom of *Restore*, and the audit event) names the data directory and the port.

Servers: {", ".join(SERVERS) or "none"}.

**检查 How to check the copy**
1. 连接 connect: `psql "host=127.0.0.1 port=<port> user=<ops user> dbname=<db>"` (the production
   credentials work: the copy is production's cluster at that point);
2. `SELECT pg_is_in_recovery();` → `f` (promoted); look at the rows around the point you wanted
   (e.g. the last registrations before the error), compare counts with what you expect.

**只取回部分数据 To recover some rows only** — `pg_dump -h 127.0.0.1 -p <port> -t <table> <db>` from
the copy, load them into production, then stop and remove the copy (below).

**提升为生产 To make the copy production** (a planned outage; 系统管理员)
1. 停应用、停生产库 stop the applications, then production (`systemctl stop postgresql@15-main` or
   `pg_ctl -D <production data directory> stop -m fast`);
2. 保留旧目录 keep the old one:
   `mv <production data directory> <production data directory>.before_pitr`;
3. 停新集群并移入 stop the copy (`pg_ctl -D <copy> stop`), then
   `mv <copy> <production data directory>` (owner stays the PostgreSQL OS user);
4. 在其 `postgresql.auto.conf` 末尾删除 hisops 加的 `port` / `listen_addresses` 两行（有注释标明），
   并删去 `archive_mode = 'off'`；in its `postgresql.auto.conf` delete the lines hisops appended
   (marked by a comment) and pgBackRest's `archive_mode = 'off'`, so production's own settings
   apply again;
5. 启动生产库 start production, check the applications; WAL archiving resumes on a new timeline;
6. 立即运行 trigger `pitr_backup` with `type = full`, then `backup_verification` for it:
   older backups belong to the old timeline.

**不再需要时 When it is not needed** — `pg_ctl -D <copy> stop -m fast` (as the PostgreSQL OS user),
then remove the directory `<copy>`.

**失败时怎么办 When it fails**
- *Authorize* failed = refused (confirmation, role, no verified backup before the target, target
  format): nothing was touched; fix the form and trigger again.
- *Restore* failed: the new cluster was stopped and removed; production untouched. A missing WAL
  segment is named (the archive has a gap: choose an earlier time); "recovered past the target" or
  "target not reached" means the point could not be proven.
"""


@dag(
    dag_id="restore_pitr",
    dag_display_name="时间点恢复 Point-in-time restore",
    description="从 pgBackRest 恢复到时间点，恢复为新集群 restore a server to a point in time",
    schedule=None,
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["hisops", "恢复", "restore", "pitr"],
    default_args=dagkit.default_args(retries=1, retry_minutes=2),  # both tasks: retries=0
    access_control=access.admin_dag(),
    params={
        "server_id": Param(
            SERVERS[0] if SERVERS else "",
            type="string",
            enum=SERVERS or [""],
            title="服务器 Server",
        ),
        "target": Param(
            "latest",
            type="string",
            enum=["latest", "time", "name"],
            title="恢复到 Restore to",
            description="latest、time（时间点）或 name（还原点）",
        ),
        "target_value": Param(
            None,
            type=["null", "string"],
            title="时间或还原点 Time or restore point",
            description="time: 2026-12-01 09:30:00+08:00；name: 还原点名称 restore point name",
        ),
        "backup_id": Param(
            "auto",
            type=["string", "integer"],
            pattern="^(auto|[1-9][0-9]*)$",
            title="备份 Backup",
            description="auto（目标前最近的已校验物理备份）或备份编号 or a backup id",
        ),
        "port": Param(
            None,
            type=["null", "integer"],
            minimum=1024,
            maximum=65535,
            title="端口 Port",
            description="留空自动选择空闲端口 empty = a free port",
        ),
        "confirm": Param(
            None,
            type=["null", "string"],
            title="确认 Confirm",
            description="输入服务器标识 type the server id",
        ),
    },
    doc_md=DOC,
)
def restore_pitr():
    @task(task_display_name="检查授权 Authorize", retries=0)
    def authorize(params=None, **context) -> dict:
        return t.authorize_pitr_restore(params, context)

    @task(
        task_display_name="恢复为新集群 Restore",
        execution_timeout=timedelta(hours=8),
        retries=0,
    )
    def restore(plan: dict, **context) -> dict:
        return t.run_pitr_restore(plan, context)

    restore(authorize())


restore_pitr()
