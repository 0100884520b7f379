"""自检 Self-check — proves hisops is wired end to end (inventory → targets → catalog)."""

from __future__ import annotations

from airflow.sdk import dag, task
from hisops.airflow import access, dagkit
from hisops.airflow import selfcheck_tasks as t  # light: drivers are imported inside the tasks

# invalid inventory → import error naming file, field, problem
INVENTORY = dagkit.parse_time_inventory()

DOC = f"""
### 自检 Self-check

**做什么 What it does** — 读取清单，连接每个数据库与主机，在运维目录库写一条自检记录，报告哪些目标\
可达。
Reads the inventory, connects to every database (one light query) and every host (one command,
locally or over SSH), writes a row and an audit event to the ops catalog (`hisops_catalog`) and
reports which targets are reachable. Manual only; run it after any change of inventory or \
connections.

Inventory now: {INVENTORY.summary()}

**失败时怎么办 When it fails**
- *Read inventory* fails: fix the inventory file (`hisops inventory validate PATH` names file, \
field and problem).
- *Verdict* fails: the log of *Probe databases / Probe hosts* names each unreachable target and why
  (wrong password → fix the Airflow connection; refused/timeout → is the server up, firewall?).
- *Record in catalog* fails: connection `hisops_catalog` is wrong or the schema is old → `hisops \
catalog upgrade`.
"""


@dag(
    dag_id="hisops_selfcheck",
    dag_display_name="自检 Self-check",
    description="连通性自检 reachability of every inventory target",
    schedule=None,
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["hisops", "自检", "selfcheck"],
    default_args=dagkit.default_args(retries=1, retry_minutes=1),
    access_control=access.operator_dag(),
    doc_md=DOC,
)
def hisops_selfcheck():
    @task(task_display_name="读取清单 Read inventory")
    def read_inventory() -> str:
        return t.read_inventory()

    @task(task_display_name="探测数据库 Probe databases")
    def probe_databases() -> list[dict]:
        return t.probe_databases()

    @task(task_display_name="探测主机 Probe hosts")
    def probe_hosts() -> list[dict]:
        return t.probe_hosts()

    @task(task_display_name="写入运维目录 Record in catalog")
    def record(databases: list[dict], hosts: list[dict], **context) -> dict:
        return t.record(databases, hosts, context)

    @task(task_display_name="结论 Verdict", retries=0)
    def verdict(summary: dict) -> str:
        return t.verdict(summary)

    inv = read_inventory()
    dbs, hosts = probe_databases(), probe_hosts()
    inv >> [dbs, hosts]
    verdict(record(dbs, hosts))


hisops_selfcheck()
