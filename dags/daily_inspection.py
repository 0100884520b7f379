"""每日巡检 Daily inspection (第七条) — systems, databases, hosts, logs, endpoints → findings,
incidents, report."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, Param, dag, task
from hisops.airflow import access, dagkit

# light: drivers, jinja2, apprise load inside the tasks
from hisops.airflow import inspection_tasks as t

# local file only; invalid inventory → precise import error
INVENTORY = dagkit.parse_time_inventory()
POOL = dagkit.POOL_INSPECTION  # bounds how many systems are inspected at once

DOC = f"""
### 每日巡检 Daily inspection (第七条)

**做什么 What it does** — 每天 `{INVENTORY.schedules.inspection}`（{INVENTORY.timezone}）按清单巡检\
每个系统的
数据库、主机（磁盘、负载、内存、服务、时钟、日志新增错误）和应用接口，结果写入运维目录库，异常自动开立/更新/关闭事件，
新发和升级的事件通知主管，最后生成巡检报告（HTML，中文在前）保存并发送给主管。
Every day at the inventory's `schedules.inspection` it inspects every system: databases (up, \
connections,
long queries, locks, wraparound, cache hit, vacuum, size growth, replication, invalid indexes, \
sequences,
backup age), hosts (filesystems, inodes, load, memory, swap, services, clock, failed units, \
updates, new log
errors) and HTTP endpoints. Findings go to the ops catalog; warn/critical findings open or update an
incident (one per check and target — no new alert every day for the same problem) and a passing \
check
resolves it. Supervisors get NEW and ESCALATED incidents at once, and the 巡检报告 (saved under
`reports.path/<date>/`, mode 0600; e-mail always gets the HTML page — a summary plus the full page
attached when it is large — chat robots get a text summary when something is at least their \
`min_severity`).

Inventory now: {INVENTORY.summary()}

**任务 Tasks** — *开始巡检 Start* opens the run in the catalog → *巡检系统 Inspect system* one \
mapped task per
system (named after the system; pool `{POOL}`; each runs its targets 8 at a time and logs `[3/12] …`
progress) → *通知事件 Notify incidents* and *生成报告 Report* → *发送报告 Send report*.

**参数 Params** — `systems`: only these system ids (empty = all), for an ad-hoc re-check after a \
fix.

**补录 Backfill** — `airflow backfill create --dag-id daily_inspection --from-date D1 --to-date \
D2` (or a
manual run with a past logical date) writes the record for a missed day. Live checks can only see \
the
present: the report says so (当前状态，非历史 present state, not historical); trends come from \
stored data.
A run for an earlier day (backfill, a manual run with a past date, a scheduled run caught up days \
later)
is historical: it moves no log offsets and opens/resolves no incidents. The on-time 07:00 run is \
dated
today (its logical date is the start of its interval, yesterday — that does not make it a backfill).

**失败时怎么办 When it fails**
- An unreachable database/host/endpoint or a failing check does **not** fail the run: it is a \
critical or
  check-error finding in the report (fix the target or its Airflow connection; the next run closes \
the incident).
- *开始巡检 Start* fails: connection `hisops_catalog` is wrong or the catalog is down / not migrated
  (`hisops catalog upgrade`); an unknown id in the `systems` param is named in the log.
- *巡检系统 Inspect system* fails: the catalog could not be written (see the log); clear the task \
once the
  catalog is back — targets are inspected again.
- *通知事件 / 发送报告* fails: no supervisor channel accepted the message (SMTP/robot connection in
  `notifications:`); the report file is already saved — its path is in the *生成报告 Report* log.
- Pool `{POOL}` missing: tasks stay *scheduled* — create it (`hisops` demo bootstrap does; Admin → \
Pools).
"""


@dag(
    dag_id="daily_inspection",
    dag_display_name="每日巡检 Daily inspection",
    description=(
        "第七条 每日巡检：数据库、主机、日志、接口 → 事件、报告 "
        "(daily inspection, incidents, report)"
    ),
    schedule=CronTriggerTimetable(
        INVENTORY.schedules.inspection, timezone=INVENTORY.timezone, interval=timedelta(days=1)
    ),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    tags=["hisops", "巡检", "inspection"],
    default_args=dagkit.default_args(retries=2, retry_minutes=2),
    access_control=access.operator_dag(),
    params={
        "systems": Param(
            [],
            type="array",
            items={"type": "string"},
            title="只巡检这些系统 Only these systems",
            description="系统 id，留空 = 全部 (system ids, empty = all)",
        )
    },
    doc_md=DOC,
)
def daily_inspection():
    @task(task_display_name="开始巡检 Start")
    def start(**context) -> list[dict]:
        return t.start(context)

    @task(
        task_display_name="巡检系统 Inspect system",
        pool=POOL,
        map_index_template=dagkit.MAP_LABEL,
        execution_timeout=timedelta(minutes=40),
    )
    def inspect_system(
        system_id: str, inspection_run_id: int, historical: bool, fold_incidents: bool, **context
    ) -> dict:
        t.label_system(system_id, context)
        return t.inspect_system(system_id, inspection_run_id, historical, fold_incidents)

    @task(task_display_name="通知事件 Notify incidents")
    def notify_incidents(outcomes: list[dict]) -> dict:
        return t.notify_incidents(outcomes)

    @task(task_display_name="生成报告 Report")
    def report(plan: list[dict], outcomes: list[dict], **context) -> dict:
        return t.report(plan, outcomes, context)

    @task(task_display_name="发送报告 Send report")
    def send_report(plan: list[dict], report_info: dict, **context) -> dict:
        return t.send_report(plan, report_info, context)

    # one work order per system: {system_id, inspection_run_id, historical, fold_incidents}
    plan = start()
    outcomes = inspect_system.expand_kwargs(plan)
    notify_incidents(outcomes)
    send_report(plan, report(plan, outcomes))


daily_inspection()
