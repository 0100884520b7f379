"""运维考核月报 O&M KPI report (第六条) and the monthly 等保 evidence
pack — from the ops catalog only."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, Param, dag, task
from hisops.airflow import access, dagkit
from hisops.airflow import (
    kpi_tasks as t,
)  # light: jinja2, sqlalchemy, apprise load inside the tasks

INVENTORY = dagkit.parse_time_inventory()  # local file only
SCHEDULE = (
    "0 9 1 * *"  # 09:00 on the 1st: after that morning's inspection, the previous month is complete
)

DOC = f"""
### 运维考核月报 O&M KPI report (第六条) · 等保证据包 evidence pack

**做什么 What it does** — 每月 1 日 09:00（{INVENTORY.timezone}）\
只根据运维目录库统计上个月的运维考核指标：各系统可用率
（巡检的可达性与接口检查，维护/变更期间除外）、事件 MTTA/MTTR、备份成功率（已验证/计划）、\
恢复演练成功率、实测 RTO 趋势、
实测 RPO（有 PITR 层时）、巡检准时率（08:00 前完成）、变更成功率与恢复时间（DORA）、人员工作量；\
生成中文 HTML 报告（内嵌 SVG
图表，无脚本、无外部请求，页脚有每个指标的定义），保存（0600）并发邮件给主管。\
随后生成当月的等保证据包（tar.gz，0600）：
恢复演练记录与证据页、审计记录导出、变更记录、巡检报告、本报告，以及把每一项对应到等保 2.0 \
条款的索引页；校验和记入目录库。
On the 1st of each month it computes last month's KPIs from the ops catalog only (availability per \
system,
MTTA/MTTR, backup and drill success, measured RTO trend, RPO when a PITR tier exists, inspection
punctuality, DORA change success and recovery time, work per person), writes the Chinese-first \
HTML report
(inline SVG, no scripts, definitions in the footer) to `reports.path/kpi/` (0600) and mails it to \
the
supervisors (every e-mail channel). Then it builds the month's 等保 evidence archive under
`reports.path/evidence/` and records its SHA-256 in the catalog. List the packs with `hisops \
evidence list`.

**参数 Params** — `month` (YYYY-MM) or `start` + `end` (dates, end inclusive) for an ad-hoc \
period; empty = the
previous month. `evidence_pack`: also build the evidence pack (monthly periods only).
Ad hoc: trigger with a form, e.g. month `2026-11`, or start `2026-11-01` end `2026-11-15`.

**失败时怎么办 When it fails**
- *运维考核月报 KPI report* fails with a period error: fix the Params (the message names the field).
- It fails with "reached no supervisor mailbox": the report is saved (path in the log and the \
catalog);
  fix the SMTP connection named in `notifications:` and clear the task (a new report is written).
- The catalog is unreachable / not migrated: `hisops catalog upgrade`, then clear the task.
- *等保证据包 Evidence pack* fails: usually disk space or permissions under \
`reports.path/evidence/`;
  clear the task after fixing — every run writes a new archive with its own checksum.
- A period without any record gives a report that says 本期无数据 (no data) rather than 0 %.
"""


@dag(
    dag_id="kpi_report",
    dag_display_name="运维考核月报 O&M KPI report",
    description=(
        "第六条 运维考核：可用率、MTTA/MTTR、备份/演练、RTO/RPO、巡检准时率、变更 "
        "(DORA)；等保证据包"
    ),
    schedule=CronTriggerTimetable(SCHEDULE, timezone=INVENTORY.timezone),
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=1),
    tags=["hisops", "考核", "kpi", "等保"],
    default_args=dagkit.default_args(retries=1, retry_minutes=5),
    access_control=access.operator_dag(),
    params={
        "month": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
            title="月份 Month",
            description="YYYY-MM；留空 = 上个月 (empty = the previous month)",
        ),
        "start": Param(
            None,
            type=["null", "string"],
            format="date",
            title="开始日期 Start",
            description="即时统计的开始日期 first day of an ad-hoc period",
        ),
        "end": Param(
            None,
            type=["null", "string"],
            format="date",
            title="结束日期 End",
            description="即时统计的结束日期（含）last day of an ad-hoc period (inclusive)",
        ),
        "evidence_pack": Param(
            True,
            type="boolean",
            title="生成等保证据包 Build the evidence pack",
            description="仅整月 monthly periods only",
        ),
    },
    doc_md=DOC,
)
def kpi_report():
    @task(task_display_name="运维考核月报 KPI report", execution_timeout=timedelta(minutes=20))
    def report(**context) -> dict:
        return t.kpi_report(context)

    @task(task_display_name="等保证据包 Evidence pack", execution_timeout=timedelta(minutes=30))
    def evidence(kpi: dict, **context) -> dict:
        return t.evidence_pack(context)

    evidence(report())


kpi_report()
