"""The restore-drill evidence page: every expectation with observed value and verdict, offline."""

from __future__ import annotations

import json
import re
import stat
from datetime import UTC, datetime

from hisops.verify.drill import DrillResult
from hisops.verify.evidence import RESULTS_JSON, render_page, write_evidence_page
from hisops.verify.gx_runner import CheckOutcome

from tests.offline_browser import offline_dom, offline_screenshot

OUTCOMES = [
    CheckOutcome(
        "row_count",
        "public.patient",
        "expect_table_row_count_to_equal",
        True,
        "public.patient 行数 = 1,000",
        "public.patient: row count = 1,000",
        observed=1000,
    ),
    CheckOutcome(
        "not_null",
        "public.prescription",
        "expect_column_values_to_not_be_null",
        False,
        "public.prescription.patient_id 非空",
        "public.prescription.patient_id not null",
        observed=None,
        unexpected_count=3,
        sample=["None", "None"],
    ),
    CheckOutcome(
        "unique",
        "public.visit",
        "expect_column_values_to_be_unique",
        True,
        "public.visit 主键唯一",
        "public.visit primary key unique",
        observed=0,
    ),
]


def _result(ok: bool = False) -> DrillResult:
    return DrillResult(
        backup_id=42,
        database_id="his_emr",
        ok=ok,
        fault="none" if ok else "backup",
        mode="fast",
        started_at=datetime(2026, 12, 1, 0, 30, tzinfo=UTC),
        finished_at=datetime(2026, 12, 1, 0, 31, tzinfo=UTC),
        scratch_db="hisops_drill_his_emr_42",
        restore_seconds=12.34,
        failures=("public.prescription.patient_id 非空 — 不符行数 unexpected 3",),
        checks_total=3,
        checks_failed=1,
        amcheck={"checked": 7, "problems": [], "unavailable": None, "seconds": 0.2},
        timings={"restore": 12.3, "total": 20.0},
    )


def test_page_lists_every_expectation_in_chinese_with_local_times():
    page = render_page(_result(), OUTCOMES, tz="Asia/Shanghai")
    for o in OUTCOMES:
        assert o.label_zh in page and o.label_en in page
    assert "失败 fail" in page and "通过 pass" in page and "2/3 项检查通过" in page
    assert "2026-12-01 08:30:00" in page  # 00:30 UTC in the inventory's zone
    assert "12.3 秒 s" in page


def test_page_makes_no_external_request_at_all():
    page = render_page(_result(), OUTCOMES)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)


def test_files_beside_each_other_and_private(tmp_path):
    folder = tmp_path / "drill"
    page = write_evidence_page(folder, _result(ok=True), OUTCOMES)
    data = json.loads((folder / RESULTS_JSON).read_text())
    assert [e["label_en"] for e in data["expectations"]] == [o.label_en for o in OUTCOMES]
    assert data["drill"]["backup_id"] == 42
    assert (
        stat.S_IMODE(page.stat().st_mode) == 0o600 and stat.S_IMODE(folder.stat().st_mode) == 0o700
    )


def test_renders_fully_in_chromium_with_the_network_blocked(tmp_path):
    page = write_evidence_page(tmp_path / "drill", _result(), OUTCOMES, tz="Asia/Shanghai")
    dom = offline_dom(page)
    assert "恢复演练证据" in dom, dom[:500]
    for o in OUTCOMES:  # every row is there, without any script or CDN
        assert o.label_zh in dom
    assert dom.count("<tr>") >= len(OUTCOMES) + 1
    png = offline_screenshot(page, tmp_path / "evidence.png")
    assert png.stat().st_size > 10_000  # a real rendering, not a blank page
