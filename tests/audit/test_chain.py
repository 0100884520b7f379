"""Tamper evidence: the hash chain catches edits and deletions, even with the trigger disabled."""

from __future__ import annotations

import hashlib
import json
import stat
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hisops.audit.export import ExportError, export_month, verified_export_covering
from hisops.audit.verify import verify_chain
from hisops.catalog import auditchain
from hisops.cli import main
from sqlalchemy import text


def _superuser(repo, sql: str) -> None:
    """What a database superuser can do: switch the append-only trigger off and change rows."""
    with repo.engine.begin() as conn:
        conn.execute(text("ALTER TABLE hisops.audit_event DISABLE TRIGGER audit_event_append_only"))
        conn.execute(text(sql))
        conn.execute(text("ALTER TABLE hisops.audit_event ENABLE TRIGGER audit_event_append_only"))


def _fill(repo, n: int = 5) -> list[int]:
    return [
        repo.add_audit_event(
            f"u{i}",
            "dag.trigger",
            f"dag:d{i}",
            "success",
            details={"n": i, "说明": "测试", "at": datetime.now(UTC)},
            source="127.0.0.1",
            reason=None,
        )
        for i in range(n)
    ]


def test_events_are_chained_and_an_intact_chain_verifies(catalog):
    ids = _fill(catalog)
    chain = catalog.audit_chain()
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5] and [e.id for e in chain] == ids
    assert chain[0].prev_hash == auditchain.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(chain, chain[1:], strict=False))
    report = verify_chain(catalog)
    assert report.ok and report.checked == 5 and report.head_hash == chain[-1].hash


def test_verify_catches_a_row_edited_by_a_superuser_with_the_trigger_disabled(catalog):
    ids = _fill(catalog)
    _superuser(catalog, f"UPDATE hisops.audit_event SET result = 'failure' WHERE id = {ids[2]}")
    report = verify_chain(catalog)
    assert not report.ok
    assert any("seq 3" in p and "content changed" in p for p in report.problems), report.problems


def test_verify_catches_a_recomputed_hash_and_a_deleted_row(catalog):
    ids = _fill(catalog)
    _superuser(
        catalog,
        f"UPDATE hisops.audit_event SET actor = 'x', hash = repeat('a', 64) WHERE id = {ids[1]}",
    )
    _superuser(catalog, f"DELETE FROM hisops.audit_event WHERE id = {ids[3]}")
    problems = verify_chain(catalog).problems
    assert any("seq 3" in p and "link" in p for p in problems), problems
    assert any("seq 4..4" in p and "deleted" in p for p in problems), problems


def test_verify_catches_a_row_slipped_in_without_the_repository(catalog):
    _fill(catalog, 2)
    with catalog.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO hisops.audit_event (actor, action, result) "
                "VALUES ('intruder', 'x', 'success')"
            )
        )
    assert any("without a hash" in p for p in verify_chain(catalog).problems)


def test_cli_verify_exit_code(catalog, capsys):
    url = catalog.engine.url.render_as_string(hide_password=False)
    _fill(catalog, 3)
    assert main(["audit", "verify", "--url", url]) == 0
    assert "OK" in capsys.readouterr().out
    _superuser(catalog, "UPDATE hisops.audit_event SET target = 'dag:other' WHERE seq = 2")
    assert main(["audit", "verify", "--url", url]) == 1
    assert "content changed" in capsys.readouterr().out


def test_concurrent_writers_never_fork_the_chain(catalog):
    def write(k: int) -> None:
        for i in range(10):
            catalog.add_audit_event(f"w{k}", "x", str(i), "success")

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify_chain(catalog)
    assert report.ok and report.checked == 40 and report.head_seq == 40


def test_monthly_export_with_chain_head_and_pruning_guard(catalog, tmp_path):
    now = datetime.now(UTC)
    _fill(catalog, 3)
    month = now.strftime("%Y-%m")
    assert verified_export_covering(catalog, now + timedelta(days=1)) is None  # nothing exported
    record = export_month(catalog, month, tmp_path / "audit", actor="cli:test", tz="UTC")
    path = tmp_path / "audit" / f"audit-{month}.jsonl"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["month"] == month and lines[0]["links_to"] == auditchain.GENESIS
    assert [e["seq"] for e in lines[1:-1]] == [1, 2, 3]
    assert lines[-1]["chain_head"] == {"last_seq": 3, "hash": record.head_hash, "events": 3}
    assert record.chain_ok and record.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # the export itself is audited (seq 4): events up to seq 3 are covered, not later ones
    after_third = datetime.fromisoformat(lines[-2]["at"]) + timedelta(microseconds=1)
    assert verified_export_covering(catalog, after_third) == record
    assert verified_export_covering(catalog, now + timedelta(days=1)) is None
    path.write_text(path.read_text() + "\n")  # a changed export file vouches for nothing
    assert verified_export_covering(catalog, after_third) is None


def test_deleting_the_tail_after_an_export_is_caught(catalog, tmp_path):
    _fill(catalog, 3)
    export_month(catalog, datetime.now(UTC).strftime("%Y-%m"), tmp_path, actor="t", tz="UTC")
    _superuser(catalog, "DELETE FROM hisops.audit_event WHERE seq >= 3")
    assert any("chain head recorded at export" in p for p in verify_chain(catalog).problems)


def test_bad_month_is_a_clear_error(catalog, tmp_path):
    with pytest.raises(ExportError, match="YYYY-MM"):
        export_month(catalog, "2026-13", tmp_path, actor="t")
