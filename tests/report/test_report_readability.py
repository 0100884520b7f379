"""The report reads well (item 7): findings built by the real check
code, rendered, then inspected."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser

from hisops.inspect import db_checks, host_checks, log_scan
from hisops.inspect.findings import Target
from hisops.inventory.thresholds import Thresholds
from hisops.report import ReportData, SystemInfo, render_report

NOW = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
DB = Target("database", "his_op", "outpatient", Thresholds(), NOW, "Asia/Shanghai")
HOST = Target("host", "app-01", "outpatient", Thresholds(), NOW, "Asia/Shanghai")
DF = "/dev/vda1 10000000 8500000 1500000 85% /"


class Cells(HTMLParser):
    """Text of every <td>, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self.cell = []

    def handle_endtag(self, tag) -> None:
        if tag == "td" and self.cell is not None and self.rows:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data) -> None:
        if self.cell is not None:
            self.cell.append(data)


def findings() -> list:
    seq = {
        "sequences": 3,
        "top": [
            {
                "name": "public.outpatient_visit_visit_id_seq",
                "last_value": 2_000_000_000,
                "limit_value": 2_147_483_647,
                "coltype": "int4",
                "cycle": False,
                "used_pct": 93.1322,
            }
        ],
    }
    idle = {
        "idle_tx_count": 1,
        "idle_tx": [
            {
                "pid": 42,
                "usename": "his",
                "app": "his",
                "client": None,
                "state": "idle in transaction",
                "state_s": 400.0,
                "xact_s": 401.0,
                "query": "SELECT 1",
            }
        ],
    }
    tables = {
        "autovacuum": True,
        "need_vacuum": [{"name": "public.d", "dead": 40000, "vacuum_h": None}],
        "need_analyze": [],
        "dead": [],
        "tables": 1,
    }
    sh = (
        "fs\t/\t" + DF + "\nfs\t/var\t" + DF + "\ninode\t/\t/dev/vda1 655360 100 655260 1% /\n"
        "inode\t/var\t/dev/vda1 655360 100 655260 1% /\n"
    )
    fs = host_checks.check_filesystems(HOST, host_checks.parse_output(sh), ["/", "/var"], {})
    inodes = host_checks.check_inodes(HOST, host_checks.parse_output(sh))
    log_t = HOST.child("log", "app-01:/var/log/his/*.log")
    log = log_scan._count_finding(
        log_t,
        "log.error",
        "error",
        "ERROR",
        1,
        ["2026-12-01 ERROR login failed password=Secret123 for 13812345678"],
        [],
    )
    return [
        db_checks.check_sequences(DB, seq, {}),
        db_checks.check_idle_in_tx(DB, idle, {}),
        db_checks.check_vacuum_age(DB, tables, {}),
        *fs,
        *inodes,
        log,
    ]


def render() -> tuple[str, list]:
    found = findings()
    info = SystemInfo(
        "outpatient",
        "门诊系统",
        "Outpatient",
        None,
        (("database", "his_op"), ("host", "app-01"), ("log", "app-01:/var/log/his/*.log")),
    )
    data = ReportData(
        hospital="测试医院",
        timezone="Asia/Shanghai",
        run_id="scheduled__x",
        generated_at=NOW,
        systems=[info],
        findings=found,
    )
    return render_report(data), found


def test_masked_samples_are_shown_with_the_log_finding() -> None:
    html, _ = render()
    assert "样例（已脱敏）" in html and "Sample lines (masked)" in html
    assert "password=***" in html and "<手机号>" in html.replace("&lt;", "<").replace("&gt;", ">")
    assert "Secret123" not in html and "13812345678" not in html


def test_value_column_is_short_and_has_units() -> None:
    html, found = render()
    parser = Cells()
    parser.feed(html)
    problem_values = {row[1]: row[3] for row in parser.rows if len(row) == 7} | {
        row[0]: row[2] for row in parser.rows if len(row) == 6
    }
    values = {f.check_id: problem_values.get(f.check_id) for f in found if f.severity != "ok"}
    assert (
        values["db.sequences"] == "93.13%"
    )  # the sequence name is in the message, not in the value cell
    assert all(v is not None and len(v) <= 16 for v in values.values()), values


def test_plurals_never_and_one_filesystem() -> None:
    _, found = render()
    by = {f.check_id: f for f in found}
    assert (
        by["db.idle_in_tx"].value_text == "1 session"
        and "1 session idle" in by["db.idle_in_tx"].message_en
    )
    assert (
        by["log.error"].value_text == "1 line"
        and "1 new log line matches" in by["log.error"].message_en
    )
    vac = by["db.vacuum_age"]
    assert (
        vac.value_text == "从未 never"
        and "0.0" not in vac.message_zh
        and "从未清理" in vac.message_zh
    )
    fs = [f for f in found if f.check_id.startswith("host.fs_used")]
    assert (
        len(fs) == 1 and fs[0].details["paths"] == ["/", "/var"] and "/, /var" in fs[0].message_zh
    )
    assert set(fs[0].details["metrics"]) >= {
        "fs_used_pct:/",
        "fs_used_pct:/var",
        "fs_free_bytes:/var",
    }
    assert len([f for f in found if f.check_id.startswith("host.inodes")]) == 1
