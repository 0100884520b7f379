"""物理备份 Physical backup on pgBackRest — 第十一条: restore to any point in time, not only
last night."""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from hisops import timeouts
from hisops.airflow import access, dagkit
from hisops.airflow import (
    pitr_tasks as t,
)  # light: drivers and the domain are imported inside the tasks

INVENTORY = dagkit.parse_time_inventory()
SERVERS = t.pitr_server_ids(INVENTORY)

DOC = f"""
### 物理备份 Physical backup (pgBackRest, 时间点恢复 PITR)

**做什么 What it does** — 对清单中每台配置了 `pitr:` 的 PostgreSQL 服务器：
1. 按清单生成 pgBackRest 配置（`pitr.config_path`，0600，调用时用 `--config` \
传入，主机上别的东西不动）；
2. 创建/检查 stanza（`stanza-create`、`check`：证明 WAL 能归档到仓库），核对 `archive_mode` / \
`archive_command` /
   `wal_level`——不符时**不会**修改生产库配置，而是失败并写明应执行的 `ALTER SYSTEM SET …`；
3. 按 `pitr.schedule`（{INVENTORY.timezone}）做 full / diff / incr \
备份（多个同时到期取最强者），手动运行可选类型；
4. 结果取自 `pgbackrest info --output=json`，登记到同一运维目录库（种类 `physical`，状态同逻辑备份：
   completed → 演练通过后 verified），更新资产 \
`hisops://pitr/<server>`，由此触发时间点恢复演练（backup_verification）。
   被杀死或失败的备份（仓库满、不可写）绝不会登记为完成。pgBackRest \
按保留策略过期的备份在目录库中标记为已删除。

For every PostgreSQL server with a `pitr:` block: writes the pgBackRest configuration from the \
inventory
(hisops-owned file, 0600, passed with `--config`), creates and checks the stanza, verifies \
archiving settings
(says exactly what to set; never edits the server), then runs a full/diff/incr backup as the \
schedule says
(or the type chosen in the form). Results come from `pgbackrest info --output=json` into the one \
catalog (kind
`physical`, same states as logical backups) and the asset `hisops://pitr/<server>` (this triggers \
the PITR
drill). A killed or failed pgBackRest run is never registered as completed. Servers now: \
{", ".join(SERVERS) or "none"}.

**失败时怎么办 When it fails** — *Prepare* names the problem:
- `archive_mode` / `archive_command` / `wal_level`: run the `ALTER SYSTEM SET …` it prints on the \
server
  (archive_mode and wal_level need a restart), then clear the task;
- `data_directory: inventory says … server reports …`: correct `servers[].data_directory` in the \
inventory;
- `pitr.stanza … no stanza`: the stanza name differs from the repository's — correct the inventory;
- `pgbackrest check failed` with an archive error: WAL does not reach the repository (repository \
full or not
  writable, wrong path) — fix it; the daily inspection shows the RPO at risk meanwhile.
*Back up* failed: pgBackRest's own error is in the log and in the catalog row (`failed`); fix and \
clear the task.
"""


@dag(
    dag_id="pitr_backup",
    dag_display_name="物理备份 Physical backup (PITR)",
    description="pgBackRest full/diff/incr + WAL 归档 archive, "
    "每台服务器一个资产 one asset per server",
    schedule=t.pitr_timetable(INVENTORY),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["hisops", "备份", "backup", "pitr"],
    default_args=dagkit.default_args(retries=1, retry_minutes=10),
    access_control=access.operator_dag(),
    params={
        "servers": Param(
            [],
            type="array",
            items={"type": "string"},
            title="服务器 Servers",
            description="留空 = 全部 empty = all",
        ),
        "type": Param(
            "auto",
            type="string",
            enum=list(t.TYPE_CHOICES),
            title="类型 Type",
            description="auto: 定时运行按计划, 手动运行 = incr（无全量时 pgBackRest 自动做全量） "
            "scheduled: as planned; manual: incr (a full when none exists)",
        ),
    },
    doc_md=DOC,
)
def pitr_backup():
    @task(task_display_name="选择服务器 Select servers")
    def select_servers(params=None) -> list[str]:
        return t.select_servers(params["servers"])

    @task(
        task_display_name="准备 Prepare (config, stanza, archiving)",
        map_index_template=dagkit.MAP_LABEL,
    )
    def prepare(server_id: str, **context) -> dict:
        return t.prepare_task(server_id, context)

    @task(
        task_display_name="物理备份 Back up",
        map_index_template=dagkit.MAP_LABEL,
        pool=dagkit.POOL_BACKUP,
        outlets=[t.pitr_alias()],
        execution_timeout=timeouts.PITR_BACKUP_TASK,
        retries=0,
    )
    def backup(prepared: dict, params=None, **context) -> dict:
        return t.backup_task(prepared, params["type"], context)

    backup.expand(prepared=prepare.expand(server_id=select_servers()))


pitr_backup()
