"""等保证据包: one 0600 archive per month with indexed, checksummed
evidence; recorded and listed."""

from __future__ import annotations

import hashlib
import tarfile

import pytest
from hisops import cli
from hisops.kpi.evidence import REQUIREMENTS, build_evidence_pack
from hisops.kpi.service import run_kpi_report
from sqlalchemy import text

from tests.kpi.test_kpi_report import NOVEMBER, NOW, RUN, TZ, P


@pytest.fixture
def inv(inventory, tmp_path):
    reports = inventory.reports.model_copy(update={"path": str(tmp_path / "reports")})
    storage = inventory.backup_storage.model_copy(update={"path": str(tmp_path / "backups")})
    return inventory.model_copy(update={"reports": reports, "backup_storage": storage})


def _point_at_files(repo, tmp_path) -> None:
    day = tmp_path / "reports" / "2026-11-03"
    day.mkdir(parents=True)
    (day / "inspection-scheduled__2026-11-03.html").write_text("<html>巡检报告</html>")
    docs = tmp_path / "backups" / "evidence" / "d1"
    docs.mkdir(parents=True)
    (docs / "index.html").write_text("<html>演练证据</html>")
    with repo.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE hisops.inspection_run SET report_path = :p "
                "WHERE run_id = 'scheduled__2026-11-03'"
            ),
            {"p": str(day / "inspection-scheduled__2026-11-03.html")},
        )
        ids = (
            conn.execute(text("SELECT id FROM hisops.backup_verification ORDER BY id LIMIT 2"))
            .scalars()
            .all()
        )
        conn.execute(
            text("UPDATE hisops.backup_verification SET evidence_path = :p WHERE id = :i"),
            {"p": str(docs), "i": ids[0]},
        )
        conn.execute(
            text(
                "UPDATE hisops.backup_verification SET evidence_path = '/etc/passwd' WHERE id = :i"
            ),
            {"i": ids[1]},
        )
        conn.execute(
            text(
                "INSERT INTO hisops.audit_event (at, actor, action, target, result) VALUES "
                "('2026-11-15 10:00+08', 'sysadmin', 'restore.request', 'his_emr', 'refused')"
            )
        )


def test_month_pack_holds_every_kind_of_evidence_with_its_requirement(
    seeded, inv, tmp_path, capsys
):
    _point_at_files(seeded, tmp_path)
    run_kpi_report(seeded, inv, NOVEMBER, RUN, [], now=NOW)

    outcome = build_evidence_pack(seeded, inv, NOVEMBER, RUN, now=NOW)

    path = tmp_path / "reports" / "evidence" / "evidence-2026-11-20261201T010000Z.tar.gz"
    assert outcome.path == str(path) and oct(path.stat().st_mode & 0o777) == "0o600"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == outcome.sha256
    (stored,) = seeded.evidence_packs()
    assert (stored.month, stored.sha256, stored.size_bytes) == (
        "2026-11",
        outcome.sha256,
        path.stat().st_size,
    )
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar.getmembers()}
        root = "evidence-2026-11"
        names = {n.removeprefix(root + "/") for n in members}
        assert {
            "index.html",
            "SHA256SUMS",
            "drills/restore-drills.csv",
            "audit/audit-events-2026-11.jsonl",
            "changes/changes-2026-11.json",
            "kpi/kpi-2026-11.html",
        } <= names
        assert any(n.startswith("inspection/2026-11-03-inspection-") for n in names)
        assert any(n.startswith("drills/evidence/") and n.endswith("/index.html") for n in names)
        assert not any(
            "passwd" in n for n in names
        )  # outside the reports/backup folders: never read
        assert all(m.mode == (0o700 if m.isdir() else 0o600) for m in members.values())
        sums = tar.extractfile(f"{root}/SHA256SUMS").read().decode().splitlines()
        for line in sums:
            digest, name = line.split("  ", 1)
            assert hashlib.sha256(tar.extractfile(f"{root}/{name}").read()).hexdigest() == digest, (
                name
            )
        index = tar.extractfile(f"{root}/index.html").read().decode()
        drills_csv = tar.extractfile(f"{root}/drills/restore-drills.csv").read().decode("utf-8-sig")
        changes = tar.extractfile(f"{root}/changes/changes-2026-11.json").read().decode()
        audit = (
            tar.extractfile(f"{root}/audit/audit-events-2026-11.jsonl").read().decode().splitlines()
        )
    assert len(audit) == 1 and '"restore.request"' in audit[0] and '"refused"' in audit[0]
    assert "<script" not in index and index.index("等保证据包") < index.index(
        "MLPS 2.0 evidence pack"
    )
    for code in REQUIREMENTS:
        assert f"<b>{code}</b>" in index
    assert "audit/audit-2026-11.jsonl" in names  # the hash-chained export, even when empty
    assert "本月无链上事件" in index  # November's rows were written outside the chain (raw SQL)
    assert "/etc/passwd" in index  # the refused path is named in the notes
    assert len(drills_csv.strip().splitlines()) == 1 + 9
    assert "work_mem" in changes and "upgrade nginx" in changes
    assert (
        cli.main(
            ["evidence", "list", "--url", seeded.engine.url.render_as_string(hide_password=False)]
        )
        == 0
    )
    assert f"#{outcome.pack_id}  2026-11" in capsys.readouterr().out
    event = next(e for e in seeded.audit_events() if e.action == "evidence.pack")
    assert event.details["sha256"] == outcome.sha256


def test_ad_hoc_period_gets_no_pack(catalog, inv):
    adhoc = P.parse(None, "2026-11-01", "2026-11-15", TZ, NOW)
    assert build_evidence_pack(catalog, inv, adhoc, RUN).skipped.startswith("ad-hoc")
    assert catalog.evidence_packs() == []


def test_pack_holds_the_hash_chained_audit_export_with_its_head_mapped_to_its_clauses(
    catalog, inv, tmp_path
):
    """Events written through the repository are hash-chained; the pack carries the month's
    export (hisops.audit.export) whose last line is the chain head, recorded in the catalog, and
    the index maps it to 8.1.4.3 (security audit) and 8.1.5.2 (audit management)."""
    import json
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from hisops.audit.verify import verify_chain

    for n in range(3):
        catalog.add_audit_event("sysadmin", "restore.request", f"his_emr_{n}", "refused")
    now = datetime.now(UTC)
    local = now.astimezone(ZoneInfo(TZ))
    this_month = P.month(local.year, local.month, TZ)
    _, last, count = catalog.audit_seq_range(this_month.start, this_month.end)
    head = catalog.audit_event_at_seq(last)

    outcome = build_evidence_pack(catalog, inv, this_month, RUN, now=now)

    root = f"evidence-{this_month.label}"
    export_name = f"audit/audit-{this_month.label}.jsonl"
    with tarfile.open(outcome.path) as tar:
        lines = tar.extractfile(f"{root}/{export_name}").read().decode().splitlines()
        index = tar.extractfile(f"{root}/index.html").read().decode()
        sums = tar.extractfile(f"{root}/SHA256SUMS").read().decode()
    header, *events, footer = (json.loads(line) for line in lines)
    assert header["chain_ok"] is True and header["month"] == this_month.label
    assert [e["target"] for e in events] == ["his_emr_0", "his_emr_1", "his_emr_2"]
    assert footer["chain_head"] == {"last_seq": last, "hash": head.hash, "events": count}
    assert verify_chain(catalog).ok  # the pack's own events extend the chain, they break nothing
    (export,) = catalog.audit_exports()
    assert (export.head_hash, export.last_seq, export.chain_ok) == (head.hash, last, True)
    assert hashlib.sha256("\n".join(lines).encode() + b"\n").hexdigest() == export.file_sha256
    assert f"  {export_name}" in sums
    # the index: the export is evidence for both audit clauses, its chain head shown
    for code in ("8.1.4.3", "8.1.5.2"):
        row = index.split(f"<b>{code}</b>", 1)[1].split("</tr>", 1)[0]
        assert f'<a href="{export_name}">' in row, code
    assert f"链头 seq {last}，哈希 {head.hash}" in index and "哈希链校验通过" in index
    pack_item = next(i for i in catalog.evidence_packs()[0].items if i["name"] == export_name)
    assert pack_item["requirements"] == ["8.1.4.3", "8.1.5.2"]
