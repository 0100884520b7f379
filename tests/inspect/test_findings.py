"""Finding helpers: severities, threshold texts, suggestions, masking, JSON-able details."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hisops.inspect import findings as F
from hisops.inventory.thresholds import Level, Thresholds


def test_classify_and_threshold_text_follow_the_level():
    hi, lo = Thresholds().connections_pct, Thresholds().tls_days_left
    assert [F.classify(hi, v) for v in (79.9, 80, 95)] == ["ok", "warn", "critical"]
    assert [F.classify(lo, v) for v in (21, 20, 3, -1)] == ["ok", "warn", "critical", "critical"]
    assert F.classify(hi, None) == "ok"
    assert F.threshold_text(hi, "%") == "warn ≥ 80%, critical ≥ 95%"
    assert F.threshold_text(lo, " d") == "warn ≤ 20 d, critical ≤ 3 d"
    assert F.threshold_text(Thresholds().bloat_bytes, " B") == "warn ≥ 1.0 GB, critical ≥ 5.0 GB"
    assert F.threshold_text(Level()) == "disabled"


def test_finding_fills_default_suggestion_only_when_not_ok():
    bad = F.finding(
        "host.fs_used:/data",
        "host",
        "h1",
        "s1",
        "critical",
        93.5,
        Thresholds().filesystem_used_pct,
        zh="满了",
        en="full",
        unit="%",
        path="/data",
    )
    assert (
        bad.suggestion_zh == F.SUGGESTIONS["host.fs_used"][0]
        and bad.threshold == "warn ≥ 80%, critical ≥ 90%"
    )
    assert bad.details == {"path": "/data"} and bad.value == 93.5
    good = F.finding("host.fs_used:/", "host", "h1", "s1", "ok", 10, zh="好", en="fine")
    assert good.suggestion_zh is None
    log = F.finding("log.oom", "log", "h1:/var/log/x", "s1", "warn", 3, zh="x", en="x")
    assert log.suggestion_en == F.SUGGESTIONS["log"][1]


def test_unreachable_and_check_error_shapes():
    down = F.unreachable("database", "db1", "s1", "connection refused")
    assert (down.check_id, down.severity, down.target_kind) == (
        "database.reachable",
        "critical",
        "database",
    )
    assert "connection refused" in down.message_zh and down.suggestion_zh
    err = F.check_error(
        "db.locks", "database", "db1", "s1", RuntimeError("boom password=hunter2\nmore")
    )
    assert err.severity == "check_error" and "RuntimeError: boom password=***" in err.message_en
    assert "hunter2" not in json.dumps(err.details)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("患者身份证 11010519491231002X 就诊", "患者身份证 <身份证号> 就诊"),
        ("id=110105194912310021,", "id=<身份证号>,"),
        ("订单号 123456789012345678901 不是身份证", "订单号 123456789012345678901 不是身份证"),
        ("tel 13912345678 / +86 13912345678", "tel <手机号> / <手机号>"),
        ("座机 010-62345678", "座机 <电话>"),
        (
            'FATAL: password authentication failed for user "his"',
            'FATAL: password authentication failed for user "his"',
        ),
        ("dsn password=abc123 host=x", "dsn password=*** host=x"),
        ("ALTER ROLE x PASSWORD 'p@ss w0rd'", "ALTER ROLE x PASSWORD ***"),
        ("密码：abc123", "密码：***"),
        ("postgresql://his:s3cret@db:5432/x", "postgresql://his:***@db:5432/x"),
    ],
)
def test_mask_sensitive(text, masked):
    assert F.mask_sensitive(text) == masked


def test_details_are_json_able():
    f = F.finding(
        "db.x",
        "database",
        "d",
        "s",
        "ok",
        zh="x",
        en="x",
        at=datetime(2026, 1, 1, tzinfo=UTC),
        n=Decimal("1.5"),
        rows=({"a": (1, 2)},),
        nan=float("nan"),
    )
    assert json.loads(json.dumps(f.details)) == {
        "at": "2026-01-01T00:00:00+00:00",
        "n": 1.5,
        "rows": [{"a": [1, 2]}],
        "nan": None,
    }
