"""恢复演练证据 — the restore-drill evidence page, our own template, offline and Chinese first.

等保 2.0 asks for records of restore tests. GX's Data Docs load bootstrap and jQuery from CDNs and
show nothing on a hospital network without internet, in English only; this page renders GX's
validation results as data instead — every expectation with its observed value and verdict —
with inline CSS, no scripts and no external requests. Beside it, ``gx_results.json`` keeps the
results as JSON (machine-readable evidence) and GX's own Data Docs stay where they were.

Pure domain: no Airflow, no database; the drill calls :func:`write_evidence_page`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hisops.verify.drill import DrillResult
    from hisops.verify.gx_runner import CheckOutcome

PAGE = "evidence.html"
RESULTS_JSON = "gx_results.json"
TEMPLATE = "drill_evidence.html.j2"
TEMPLATES = Path(__file__).resolve().parents[1] / "report" / "templates"

FAULTS = {
    "none": "无 none",
    "configuration": "配置问题 configuration",
    "infrastructure": "基础设施问题 infrastructure",
    "backup": "备份损坏 backup is bad",
}
STEPS = {
    "manifest": "读取清单 manifest",
    "checksums": "校验和 checksums",
    "create_db": "建演练库 create scratch",
    "restore": "恢复 restore",
    "checks": "数据质量检查 data checks",
    "amcheck": "索引检查 amcheck",
    "drop_db": "删演练库 drop scratch",
    "scratch": "演练库内全部 inside scratch",
    "target": "写入恢复点标记 target markers",
    "target_wait": "等待标记归档 wait for the markers' archive",
    "recovery": "恢复 (重放 WAL) recovery",
    "gx_import": "载入 GX import GX",
    "gx_import_wait": "等待 GX 载入 wait for the GX import",
    "pgbackrest_verify": "pgbackrest verify",
    "verify_wait": "等待 verify wait for verify",
    "teardown": "停止并删除演练实例 stop and remove the scratch server",
    "total": "合计 total",
}


def amcheck_summary(amcheck: dict[str, Any]) -> dict[str, Any]:
    """A logical drill's amcheck result as is; a PITR drill's (one per database) added up."""
    if not amcheck or "checked" in amcheck:
        return amcheck
    per_db = {db: v for db, v in amcheck.items() if isinstance(v, dict)}
    parts = list(per_db.values())
    unavailable = [f"{db}: {v['unavailable']}" for db, v in per_db.items() if v.get("unavailable")]
    return {
        "checked": sum(v.get("checked") or 0 for v in parts),
        "problems": [p for v in parts for p in v.get("problems") or []],
        "unavailable": "; ".join(unavailable) if len(unavailable) == len(parts) else None,
    }


def _rows(outcomes: Sequence[CheckOutcome]) -> list[dict[str, Any]]:
    rows = [o.as_dict() for o in outcomes]
    return sorted(rows, key=lambda r: (r["success"], r["table"] or "", r["kind"]))


def render_page(
    result: DrillResult,
    outcomes: Sequence[CheckOutcome],
    *,
    tz: str | None = None,
    hospital: str | None = None,
) -> str:
    """The evidence page as one self-contained HTML document."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from hisops.report.timefmt import DEFAULT_TZ, fmt

    zone = tz or DEFAULT_TZ
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters["ts"] = lambda d: fmt(d, zone, seconds=True)
    rows = _rows(outcomes)
    return env.get_template(TEMPLATE).render(
        r=result,
        rows=rows,
        passed=sum(r["success"] for r in rows),
        tz=zone,
        hospital=hospital,
        faults=FAULTS,
        steps=STEPS,
        amcheck=amcheck_summary(result.amcheck or {}),
    )


def write_evidence_page(
    directory: Path,
    result: DrillResult,
    outcomes: Sequence[CheckOutcome],
    *,
    tz: str | None = None,
    hospital: str | None = None,
) -> Path:
    """``evidence.html`` + ``gx_results.json`` in ``directory`` (files 0600, folder 0700)."""
    from hisops.backup import storage

    storage.make_dirs(directory)
    results = {"drill": result.as_dict(), "expectations": [o.as_dict() for o in outcomes]}
    storage.write_private(
        directory / RESULTS_JSON,
        json.dumps(results, ensure_ascii=False, indent=1, default=str).encode(),
    )
    page = directory / PAGE
    storage.write_private(page, render_page(result, outcomes, tz=tz, hospital=hospital).encode())
    return page
