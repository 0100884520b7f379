"""安全审计报告 — the security audit as one Chinese-first HTML page, grouped by 等保 2.0 clause."""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hisops.catalog.records import SEVERITY_RANK

if TYPE_CHECKING:
    from hisops.catalog.records import FindingRecord
    from hisops.inventory.models import Inventory
    from hisops.runinfo import RunInfo

TEMPLATES = Path(__file__).with_name("templates")
SEVERITY_ZH = {
    "ok": "正常 ok",
    "warn": "警告 warn",
    "critical": "严重 critical",
    "check_error": "未能检查 check error",
}


def render(inventory: Inventory, run: RunInfo, findings: list[FindingRecord]) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from hisops.report.timefmt import fmt

    groups: dict[str, list[FindingRecord]] = defaultdict(list)
    for f in sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity], f.target_id, f.check_id)):
        groups[str(f.details.get("clause") or "其他 other")].append(f)
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITY_ZH}
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"])
    )
    return env.get_template("security_report.html.j2").render(
        hospital=inventory.hospital,
        run=run,
        now=fmt(datetime.now(UTC), inventory.timezone),
        groups=sorted(groups.items()),
        counts=counts,
        severity_zh=SEVERITY_ZH,
        tz=inventory.timezone,
    )


def write_report(
    reports_dir: Path, inventory: Inventory, run: RunInfo, findings: list[FindingRecord]
) -> Path:
    """``<reports>/security/security-<time>.html`` (0600 in 0700 folders)."""
    folder = reports_dir / "security"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for d in (reports_dir, folder):
        d.chmod(0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"security-{stamp}.html"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(render(inventory, run, findings))
    return path
