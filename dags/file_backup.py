"""系统文件备份 System file backup — 第十一条: back up the hosts' configured directories nightly."""

from __future__ import annotations

from airflow.sdk import CronTriggerTimetable, Param, dag, task
from hisops import timeouts
from hisops.airflow import access, dagkit
from hisops.airflow import backup_tasks as t  # light: paramiko is imported inside the tasks

INVENTORY = dagkit.parse_time_inventory()
HOSTS = [h.id for _, h in INVENTORY.all_hosts() if h.backup_paths]


DOC = f"""
### 系统文件备份 System file backup (第十一条)

**做什么 What it does** — 每晚 `{INVENTORY.schedules.backup}`（{INVENTORY.timezone}）把清单中主机的
`backup_paths` 目录打包（tar + 主机上的 zstd 或 gzip 压缩），经 \
SSH（或本机管道）流式传回，边写边算 SHA-256，
不在内存中保存整个归档；与数据库备份相同的规则：运维目录库登记、清单最后写入、原子改名、0600/0700 \
权限、
失败时不留残留。随后重新读取每个归档（校验和、解压、列出成员），通过则标记为 verified。

For every host with `backup_paths`, the host runs `tar` with its own compressor and streams the \
archive
over SSH (or a local pipe); we write it to \
`{INVENTORY.backup_storage.path}/_files/<host_id>/<stamp>-<id>/files/`
in 1 MiB pieces while hashing — never the whole archive in memory. Manifest last, atomic rename, a
catalog row (kind `files`) and the asset `hisops://backup/<host_id>`. Then every archive is re-read
(checksum, decompress, list members) and the backup is marked verified. Pool `hisops_backup`.

Hosts now: {", ".join(HOSTS) or "none (add backup_paths to a host)"}.

**失败时怎么办 When it fails**
- *备份路径不存在或不可读 paths missing or unreadable*: fix `backup_paths` in the inventory or the
  permissions of the SSH user on the host.
- *tar 失败 failed* / SSH errors: the host or its connection is down; the catalog row is `failed` \
and no
  half-written archive is left; clear the task when the host is back.
- *文件备份校验失败 verification failed*: the archive on disk is damaged — check the backup \
volume, then
  re-run the DAG for that host (`hosts` = ["host-id"]).
"""


@dag(
    dag_id="file_backup",
    dag_display_name="系统文件备份 System file backup",
    description="主机配置目录 tar 流式备份 streamed tar backups of hosts' backup_paths",
    schedule=CronTriggerTimetable(INVENTORY.schedules.backup, timezone=INVENTORY.timezone),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["hisops", "备份", "backup", "files"],
    default_args=dagkit.default_args(retries=1, retry_minutes=10),
    access_control=access.operator_dag(),
    params={
        "hosts": Param(
            [],
            type="array",
            items={"type": "string"},
            title="主机 Hosts",
            description="留空 = 全部配置了 backup_paths 的主机 empty = all hosts with backup_paths",
        )
    },
    doc_md=DOC,
)
def file_backup():
    @task(task_display_name="选择主机 Select hosts")
    def select_hosts(params=None) -> list[str]:
        return t.select_hosts(params["hosts"])

    @task(
        task_display_name="备份文件 Back up files",
        map_index_template=dagkit.MAP_LABEL,
        pool=dagkit.POOL_BACKUP,
        outlets=[t.backup_alias()],
        execution_timeout=timeouts.FILE_BACKUP_TASK,
    )
    def backup(host_id: str, **context) -> dict:
        return t.backup_files_task(host_id, context)

    @task(task_display_name="校验归档 Verify archives", map_index_template=dagkit.MAP_LABEL)
    def verify(result: dict, **context) -> dict:
        return t.verify_file_backup_task(result, context)

    @task(
        task_display_name="异地副本 Off-site copy",
        map_index_template=dagkit.MAP_LABEL,
        pool=dagkit.POOL_BACKUP,
        execution_timeout=timeouts.FILE_BACKUP_TASK,
    )
    def offsite(result: dict, **context) -> dict:
        return t.offsite_copy(result, context)

    @task(task_display_name="汇总 Summary", trigger_rule="all_done", retries=0)
    def summary(selected: list[str], **context) -> dict:
        return t.summarize_run("files", selected, context)

    selected = select_hosts()
    results = backup.expand(host_id=selected)
    checked = verify.expand(result=results)
    copies = offsite.expand(result=results)
    [checked, copies] >> summary(selected)


file_backup()
