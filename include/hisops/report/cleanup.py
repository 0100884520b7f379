"""保留清理报告 — the retention cleanup report: one self-contained HTML
page (inline CSS, no scripts).

Input: the run's step and file records from the catalog plus a little context; output: HTML,
Chinese first with English alongside. Pure: no Airflow, no database access.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hisops.kpi.files import private_dir, write_private
from hisops.report.render import fmt_bytes, fmt_time, jinja_environment, summary_text

MAX_FILES = 50  # skipped/failed files listed in the page; the catalog holds all of them
SCOPES = {
    "host": ("主机文件", "Host files"),
    "task_logs": ("Airflow 任务日志", "Airflow task logs"),
    "catalog": ("运维目录库记录", "hisops records"),
    "airflow": ("Airflow 元数据", "Airflow metadata"),
}
STATES = {
    "ok": ("完成", "done", "#1e8e3e"),
    "dry_run": ("预演", "dry run", "#1a73e8"),
    "skipped": ("跳过", "skipped", "#f9ab00"),
    "failed": ("失败", "failed", "#d93025"),
    "protected": ("触及受保护路径", "protected path", "#d93025"),
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class CleanupReport:
    hospital: str
    run_id: str
    cleanup_run_id: int
    dry_run: bool
    timezone: str
    generated_at: datetime
    steps: Sequence[
        Any
    ]  # CleanupStepRecord-like: scope, target, item, state, reason, files, rows, …
    files: Sequence[
        Any
    ] = ()  # skipped / failed CleanupFileRecord-like (path, reason, outcome, rule …)
    alerts: Sequence[str] = field(default_factory=list)

    def of(self, scope: str) -> list[Any]:
        return [s for s in self.steps if s.scope == scope]

    @property
    def bytes_freed(self) -> int:
        return sum(s.bytes_freed for s in self.steps)

    @property
    def rows_pruned(self) -> int:
        return sum(s.rows for s in self.steps if s.scope in ("catalog", "airflow"))

    @property
    def skipped(self) -> int:
        return sum(s.skipped for s in self.steps) + sum(
            1 for s in self.steps if s.state == "skipped"
        )

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.steps) + sum(
            1 for s in self.steps if s.state in ("failed", "protected")
        )


def subject(r: CleanupReport) -> str:
    tag = "预演 dry run · " if r.dry_run else ""
    day = r.generated_at.astimezone(ZoneInfo(r.timezone)).date().isoformat()
    verb = "可释放 would free" if r.dry_run else "释放 freed"
    return (
        f"{tag}保留清理 Retention cleanup {day} · {r.hospital} · {verb} "
        f"{fmt_bytes(r.bytes_freed)} · 删除记录 rows {r.rows_pruned} · 告警 alerts "
        f"{len(r.alerts)}"
    )


def text_summary(r: CleanupReport, path: str | None = None) -> str:
    lines = [subject(r)] + [f"- {a}" for a in r.alerts]
    for s in r.of("host") + r.of("task_logs"):
        lines.append(
            f"  {s.target}/{s.item}: {STATES[s.state][0]} {STATES[s.state][1]}, "
            f"{s.files} 文件 files, {fmt_bytes(s.bytes_freed)}"
            + (f" — {s.reason}" if s.reason else "")
        )
    return summary_text(lines, path)


def render(r: CleanupReport) -> str:
    env = jinja_environment()
    env.filters.update(bytes=fmt_bytes, time=fmt_time)
    tz = ZoneInfo(r.timezone)
    return env.get_template("cleanup_report.html.j2").render(
        r=r,
        tz=tz,
        SCOPES=SCOPES,
        STATES=STATES,
        MAX_FILES=MAX_FILES,
        subject=subject(r),
        day=r.generated_at.astimezone(tz).date(),
    )


def save(html: str, reports_dir: Path, r: CleanupReport) -> Path:
    """reports/cleanup/<YYYY-MM-DD>/cleanup-<run>.html (dir 0700, file 0600), atomically."""
    day = r.generated_at.astimezone(ZoneInfo(r.timezone)).date().isoformat()
    folder = private_dir(Path(reports_dir) / "cleanup") / day
    path = folder / f"cleanup-{_UNSAFE.sub('-', r.run_id).strip('-.') or 'run'}.html"
    write_private(path, html.encode("utf-8"))
    return path
