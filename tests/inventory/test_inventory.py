"""The inventory: the example loads, thresholds merge, and every
malformed file gets one precise line."""

from __future__ import annotations

import subprocess
import sys
from datetime import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hisops.inventory import (
    Inventory,
    InventoryError,
    Thresholds,
    default_inventory_path,
    load_inventory,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "inventory" / "hospital.example.yaml"
BAD = Path(__file__).parent / "bad"
HISOPS = Path(sys.executable).parent / "hisops"

THRESHOLD_NAMES = (
    "uptime_minutes, connections_pct, idle_in_tx_seconds, idle_in_tx_count, long_query_seconds, "
    "long_transaction_seconds, "
    "lock_wait_seconds, xid_age_pct, xid_age, cache_hit_pct, dead_tuples_min, dead_tuples_pct, "
    "vacuum_age_hours, analyze_age_hours, bloat_bytes, index_bloat_pct, replication_lag_seconds, "
    "replication_lag_bytes, inactive_slot_minutes, wal_ready_files, sequence_used_pct, "
    "invalid_indexes, filesystem_used_pct, days_until_full, inodes_free_pct, load_per_cpu, "
    "memory_available_pct, swap_free_pct, failed_units, clock_offset_seconds, "
    "http_latency_seconds, tls_days_left, backup_age_hours"
)

# file in tests/inventory/bad → the exact line after "<file>: "
BAD_CASES = {
    "keep_daily_zero.yaml": "systems[1].databases[0].backup.keep_daily: must be >= 1",
    "unknown_key.yaml": "systems[0].databases[0].schema: unknown key (allowed: id, conn_id, "
    "conn_id_shared, engine, critical_tables, critical_columns, backup, "
    "expectations, thresholds, pg_bindir, host, data_path, server)",
    "threshold_typo.yaml": f"thresholds.conections_pct: unknown key (allowed: {THRESHOLD_NAMES}); "
    "did you mean connections_pct?",
    "warn_above_critical.yaml": "thresholds.connections_pct: warn must be <= critical",
    "lower_is_worse_order.yaml": "systems[0].databases[0].thresholds.cache_hit_pct: "
    "warn must be >= critical (lower is worse)",
    "inherited_level_clash.yaml": "systems[0].databases[0].thresholds.connections_pct: "
    "warn must be <= critical (effective warn 96, critical 95)",
    "host_ssh_and_local.yaml": "systems[0].hosts[0]: ssh_conn_id and local: true are mutually "
    "exclusive (set exactly one)",
    "host_no_access.yaml": "systems[0].hosts[0]: set exactly one of ssh_conn_id (remote host) "
    "or local: true (this machine)",
    "duplicate_id.yaml": "systems[1].databases[0].id: duplicate database id 'his_outpatient' "
    "(first at systems[0].databases[0].id)",
    "bad_cron.yaml": "schedules.inspection: not a valid cron expression: '0 25 * * *' "
    "(minute hour day month weekday, e.g. '0 7 * * *')",
    "bad_timezone.yaml": "timezone: unknown time zone 'Asia/Beijing' "
    "(IANA name, e.g. Asia/Shanghai)",
    "bad_log_regex.yaml": "systems[0].hosts[0].logs[0].patterns.error: "
    "invalid regular expression: unterminated character set at position 5",
    "password_key.yaml": "systems[0].databases[0].password: secrets are not allowed in the "
    "inventory: put it in the Airflow connection 'his_outpatient'",
    "url_credentials.yaml": "systems[0].endpoints[0].url: secrets are not allowed in the "
    "inventory: remove user:password@ from the URL and put it in an "
    "Airflow connection",
    "yaml_syntax.yaml": "line 9, column 4: invalid YAML: expected <block end>, but found "
    "'<block mapping start>' (while parsing a block collection at line 7)",
    "duplicate_yaml_key.yaml": "line 13, column 5: invalid YAML: duplicate key 'name' "
    "(first at line 8)",
    "empty.yaml": "(file): empty file: expected a mapping (version, hospital, systems, ...)",
    "top_level_list.yaml": "(file): top level must be a mapping (key: value), got a list",
    "wrong_type.yaml": "systems[0].databases[0].critical_tables: must be a list",
    "bad_notification_kind.yaml": "notifications[0].kind: must be one of: "
    "email, wecom, dingtalk, webhook",
    "email_without_to.yaml": "notifications[0].to: required for kind email (list of addresses)",
    "bad_conn_id.yaml": "systems[1].databases[0].conn_id: not a valid Airflow connection id "
    "(allowed: letters, digits, _ . -)",
    "encrypt_without_key.yaml": "systems[0].databases[0].backup.encryption_conn_id: "
    "required when encrypt is true",
    "missing_hospital.yaml": "hospital: required",
    "unquoted_time.yaml": 'maintenance_window.start: must be a quoted "HH:MM" string '
    "(YAML reads unquoted 22:00 as a number)",
    "timeout_zero.yaml": "systems[0].endpoints[0].timeout_s: must be > 0",
    "no_systems.yaml": "systems: must have at least 1 item",
    "bad_slug.yaml": "systems[0].id: must be a slug: lowercase letters, digits, _ and - (at most "
    "64), e.g. his_outpatient",
}


def raw_example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def write(tmp_path: Path, data: dict[str, Any], name: str = "inv.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# --- the example -------------------------------------------------------------------------


def test_example_loads_and_summary_counts_the_file() -> None:
    raw = raw_example()
    systems = raw["systems"]
    expected = (
        f"{len(systems)} systems, "
        f"{sum(len(s.get('databases', [])) for s in systems)} databases, "
        f"{sum(len(s.get('hosts', [])) for s in systems)} hosts, "
        f"{sum(len(s.get('endpoints', [])) for s in systems)} endpoints, "
        f"{len(raw.get('notifications', []))} notification channels"
    )
    inv = load_inventory(EXAMPLE)
    assert inv.summary() == expected
    assert inv.hospital == raw["hospital"]
    assert [d.id for _, d in inv.all_databases()] == [
        d["id"] for s in systems for d in s.get("databases", [])
    ]


def test_example_conveniences() -> None:
    raw = raw_example()
    inv = load_inventory(EXAMPLE)
    first_db = raw["systems"][0]["databases"][0]
    assert inv.find_database(first_db["id"]).conn_id == first_db["conn_id"]
    with pytest.raises(KeyError, match="no database 'nope'"):
        inv.find_database("nope")
    system, host = inv.all_hosts()[0]
    assert system.id == raw["systems"][0]["id"] and host.local
    assert inv.all_endpoints()[0][1].url == raw["systems"][0]["endpoints"][0]["url"]
    assert inv.resolve_path(raw["reports"]["path"]) == REPO / raw["reports"]["path"]
    assert inv.resolve_path("/srv/x") == Path("/srv/x")


def test_defaults_fill_in(tmp_path: Path) -> None:
    raw = raw_example()
    for key in ("timezone", "schedules"):
        raw.pop(key)
    inv = load_inventory(write(tmp_path, raw))
    assert inv.timezone == "Asia/Shanghai"
    assert (inv.schedules.inspection, inv.schedules.backup) == ("0 7 * * *", "0 1 * * *")
    host = inv.all_hosts()[0][1]
    assert host.logs[0].compiled()["fatal"].search("PANIC: oops")


def test_retention_is_the_default_backup_policy(tmp_path: Path) -> None:
    raw = raw_example()
    raw["retention"] = {"keep_daily": 3, "keep_weekly": 2, "keep_monthly": 1}
    raw["systems"][2]["databases"][0]["backup"] = {"keep_daily": 30}
    raw["systems"][1]["databases"][0].pop("backup", None)
    inv = load_inventory(write(tmp_path, raw))
    plain = inv.find_database(raw["systems"][1]["databases"][0]["id"]).backup
    own = inv.find_database(raw["systems"][2]["databases"][0]["id"]).backup
    assert (plain.keep_daily, plain.keep_weekly, plain.keep_monthly) == (3, 2, 1)
    assert (own.keep_daily, own.keep_weekly, own.keep_monthly) == (30, 2, 1)


def test_maintenance_window_across_midnight(tmp_path: Path) -> None:
    raw = raw_example()
    raw["maintenance_window"] = {"start": "22:00", "end": "02:00"}
    window = load_inventory(write(tmp_path, raw)).maintenance_window
    assert window.contains(time(23, 30)) and window.contains(time(1, 59))
    assert not window.contains(time(2, 0)) and not window.contains(time(12, 0))


# --- thresholds --------------------------------------------------------------------------


def test_thresholds_merge_defaults_then_global_then_target(tmp_path: Path) -> None:
    defaults = Thresholds()
    raw = raw_example()
    conn = defaults.connections_pct
    fs = defaults.filesystem_used_pct
    raw["thresholds"] = {
        "connections_pct": {"warn": conn.warn - 10},  # global sets only warn
        "filesystem_used_pct": {"warn": fs.warn - 5, "critical": fs.critical - 2},
    }
    db_raw = raw["systems"][0]["databases"][0]
    db_raw["thresholds"] = {
        "connections_pct": {"critical": conn.critical + 2},
        "xid_age_pct": {"warn": 50},
    }
    inv = load_inventory(write(tmp_path, raw))

    glob = inv.thresholds_for()
    assert glob.connections_pct.warn == conn.warn - 10
    assert glob.connections_pct.critical == conn.critical  # inherited from defaults
    assert (glob.filesystem_used_pct.warn, glob.filesystem_used_pct.critical) == (
        fs.warn - 5,
        fs.critical - 2,
    )

    eff = inv.thresholds_for(inv.find_database(db_raw["id"]))
    assert eff.connections_pct.warn == conn.warn - 10  # from global
    assert eff.connections_pct.critical == conn.critical + 2  # from target
    assert eff.xid_age_pct.warn == 50 and eff.xid_age_pct.critical == defaults.xid_age_pct.critical
    assert eff.filesystem_used_pct == glob.filesystem_used_pct
    assert eff.cache_hit_pct == defaults.cache_hit_pct  # untouched
    other = inv.find_database(raw["systems"][1]["databases"][0]["id"])
    assert inv.thresholds_for(other) == glob


def test_threshold_null_disables_a_level(tmp_path: Path) -> None:
    raw = raw_example()
    raw["systems"][0]["endpoints"][0]["thresholds"] = {"tls_days_left": {"warn": None}}
    inv = load_inventory(write(tmp_path, raw))
    level = inv.thresholds_for(inv.all_endpoints()[0][1]).tls_days_left
    assert level.warn is None and level.critical == Thresholds().tls_days_left.critical


def test_level_direction() -> None:
    t = Thresholds()
    conn, hit = t.connections_pct, t.cache_hit_pct
    assert [conn.classify(v) for v in (conn.warn - 1, conn.warn, conn.critical + 1)] == [
        "ok",
        "warn",
        "critical",
    ]
    assert hit.lower_is_worse
    assert [hit.classify(v) for v in (hit.warn + 0.5, hit.warn, hit.critical - 1)] == [
        "ok",
        "warn",
        "critical",
    ]
    assert t.idle_in_tx_count.classify(t.idle_in_tx_count.critical) == "critical"


# --- malformed files ---------------------------------------------------------------------


def test_there_are_enough_bad_fixtures() -> None:
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(BAD_CASES)
    assert len(BAD_CASES) >= 12


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_bad_file_gives_one_exact_line(name: str) -> None:
    path = BAD / name
    assert problems_of(path) == [f"{path}: {BAD_CASES[name]}"]


def test_several_problems_are_all_reported(tmp_path: Path) -> None:
    raw = raw_example()
    raw["retention"]["keep_weekly"] = -1
    raw["systems"][0]["databases"][0]["backup"]["jobs"] = 17
    raw["notifications"][0]["min_severity"] = "info"
    path = write(tmp_path, raw)
    assert problems_of(path) == [
        f"{path}: retention.keep_weekly: must be >= 0",
        f"{path}: notifications[0].min_severity: must be one of: warn, critical",
        f"{path}: systems[0].databases[0].backup.jobs: must be <= 16",
    ]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert problems_of(missing) == [f"{missing}: (file): file not found"]
    assert problems_of(tmp_path) == [f"{tmp_path}: (file): is a directory, not a file"]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "gbk.yaml"
    path.write_bytes("hospital: 测试\n".encode("gbk"))  # 0xb2 is no UTF-8 lead byte
    assert problems_of(path) == [f"{path}: (file): not UTF-8 text (byte 10): save it as UTF-8"]


def test_secrets_nested_and_table_names_allowed(tmp_path: Path) -> None:
    raw = raw_example()
    db = raw["systems"][0]["databases"][0]
    db["critical_columns"]["user_token"] = ["id"]  # a table name, not a secret
    db["expectations"] = {
        "patient": [{"type": "expect_column_values_to_not_be_null", "api_key": "x"}]
    }
    raw["systems"][0]["hosts"][0]["ssh_private_key"] = "/root/.ssh/id_rsa"
    path = write(tmp_path, raw)
    assert problems_of(path) == [
        f"{path}: systems[0].databases[0].expectations.patient[0].api_key: secrets are not "
        "allowed in the inventory: put it in the Airflow connection this entry names (conn_id)",
        f"{path}: systems[0].hosts[0].ssh_private_key: secrets are not allowed in the inventory: "
        "put it in the Airflow connection this entry names (conn_id)",
    ]


def test_expectation_needs_type(tmp_path: Path) -> None:
    raw = raw_example()
    raw["systems"][0]["databases"][0]["expectations"] = {"patient": [{"column": "name"}]}
    path = write(tmp_path, raw)
    assert problems_of(path) == [
        f"{path}: systems[0].databases[0].expectations.patient[0]: needs a 'type' key "
        "(a GX expectation, e.g. expect_column_values_to_not_be_null)"
    ]


def test_direct_validation_keeps_defaults_base_dir() -> None:
    inv = Inventory.model_validate(raw_example())
    assert inv.base_dir == REPO


def test_default_inventory_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HISOPS_INVENTORY", raising=False)
    monkeypatch.delenv("AIRFLOW_VAR_HISOPS_INVENTORY", raising=False)
    assert default_inventory_path() == EXAMPLE
    monkeypatch.setenv("AIRFLOW_VAR_HISOPS_INVENTORY", str(tmp_path / "b.yaml"))
    assert default_inventory_path() == tmp_path / "b.yaml"
    monkeypatch.setenv("HISOPS_INVENTORY", str(tmp_path / "a.yaml"))
    assert default_inventory_path() == tmp_path / "a.yaml"


# --- the CLI -----------------------------------------------------------------------------


def run_cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HISOPS), "inventory", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_validate_example() -> None:
    result = run_cli(EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"OK {EXAMPLE}: {load_inventory(EXAMPLE).summary()}"


@pytest.mark.parametrize(
    "name", ["keep_daily_zero.yaml", "yaml_syntax.yaml", "empty.yaml", "password_key.yaml"]
)
def test_cli_validate_bad_file(name: str) -> None:
    path = BAD / name
    result = run_cli(path)
    assert result.returncode == 1
    assert result.stderr == f"{path}: {BAD_CASES[name]}\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_documented_optional_keys_are_accepted(tmp_path: Path) -> None:
    raw = raw_example()
    raw["backup_storage"]["offsite"] = {
        "kind": "sftp",
        "ssh_conn_id": "backup_offsite",
        "path": "/srv/off",
    }
    db = raw["systems"][0]["databases"][0]
    db["backup"].update(
        jobs=4, compress=9, exact_count_max_rows=1000, encrypt=True, encryption_conn_id="k"
    )
    db.update(
        engine="postgresql",
        pg_bindir="/usr/lib/postgresql/16/bin",
        thresholds={"connections_pct": {"warn": 70}},
    )
    db["expectations"] = {
        "patient": [{"type": "expect_column_values_to_match_regex", "column": "id_card_no"}]
    }
    host = raw["systems"][0]["hosts"][0]
    host.update(backup_paths=["/etc/his"], thresholds={"filesystem_used_pct": {"warn": 85}})
    raw["systems"][0]["hosts"].append(
        {"id": "db1", "ssh_conn_id": "ssh_db1", "services": ["postgresql"]}
    )
    raw["systems"][0]["endpoints"][0].update(expect_text='"status"', verify_tls=False)
    inv = load_inventory(write(tmp_path, raw))
    assert inv.backup_storage.offsite is not None and inv.backup_storage.offsite.kind == "sftp"
    assert inv.find_database(db["id"]).backup.encrypt
    assert (
        inv.thresholds_for(inv.find_host("db1")).filesystem_used_pct
        == inv.thresholds_for().filesystem_used_pct
    )
    assert inv.find_host("db1").disk_paths == ["/"] and inv.find_host("db1").logs == []
