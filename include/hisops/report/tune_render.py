"""性能优化评估报告 and 数据库维护报告 — HTML (inline CSS, no scripts, Chinese first).

Input: the plain dicts the tune services return (``ReviewResult.as_dict()``, maintenance run
results); no database access here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hisops.kpi.files import write_private
from hisops.report.render import fmt_bytes, jinja_environment, summary_text

SEVERITY = {"critical": ("严重", "#d93025"), "warn": ("警告", "#f9ab00"), "ok": ("正常", "#1e8e3e")}
STEP_STATE = {
    "applied": ("已执行", "applied", "#1e8e3e"),
    "skipped": ("已跳过", "skipped", "#80868b"),
    "failed": ("失败", "failed", "#d93025"),
    "planned": ("计划", "planned (dry run)", "#1a73e8"),
    "refused": ("已拒绝", "refused", "#d93025"),
}


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def _local(moment: str | datetime | None, tz: ZoneInfo) -> str:
    if moment is None:
        return "—"
    dt = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def _env():
    env = jinja_environment()
    env.filters.update(bytes=lambda v: "—" if v is None else fmt_bytes(float(v)), ms=_ms)
    env.globals.update(SEVERITY=SEVERITY, STEP_STATE=STEP_STATE)
    return env


def render_review(
    results: Sequence[Mapping[str, Any]],
    *,
    hospital: str,
    tz: ZoneInfo,
    run_id: str,
    generated_at: datetime,
) -> str:
    template = _env().get_template("performance_review.html.j2")
    return template.render(
        results=results,
        hospital=hospital,
        run_id=run_id,
        generated=_local(generated_at, tz),
        local=lambda m: _local(m, tz),
    )


def review_subject(results: Sequence[Mapping[str, Any]], hospital: str, day: str) -> str:
    n = sum(len(r.get("advice", {}).get("suggestions", [])) for r in results)
    problems = sum(len(r.get("findings", [])) for r in results)
    return (
        f"性能优化评估 Performance review {day} · {hospital} · 索引建议 suggestions {n} · "
        f"发现 findings {problems}"
    )


def review_text(results: Sequence[Mapping[str, Any]], subject: str, path: str | None) -> str:
    lines = [subject]
    for r in results:
        lines.append(
            f"- {r['database_id']}: 建议 {len(r.get('advice', {}).get('suggestions', []))} "
            f"suggestions, 未用索引 unused {len(r.get('health', {}).get('unused', []))}, "
            f"重复索引 redundant {len(r.get('health', {}).get('redundant', []))}"
        )
        lines += [f"  ! {f['message_zh']} ({f['message_en']})" for f in r.get("findings", [])]
    return summary_text(lines, path)


def render_maintenance(result: Mapping[str, Any], *, hospital: str, tz: ZoneInfo) -> str:
    template = _env().get_template("db_maintenance.html.j2")
    return template.render(r=result, hospital=hospital, local=lambda m: _local(m, tz))


def save_html(html: str, reports_dir: Path, day: date, name: str) -> Path:
    """Write reports_dir/<YYYY-MM-DD>/<name>.html (dir 0700, file 0600) atomically."""
    folder = Path(reports_dir) / day.isoformat()
    path = folder / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name).strip('-.') or 'report'}.html"
    write_private(path, html.encode("utf-8"))
    return path
