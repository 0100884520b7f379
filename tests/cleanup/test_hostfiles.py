"""Host file cleanup against real files: locally and through the loopback sshd."""

from __future__ import annotations

import gzip
import subprocess
import time
from pathlib import Path

import pytest
from hisops.cleanup import results as r
from hisops.cleanup.service import clean_host_files
from hisops.inventory.cleanup import DATA_DIR, Protected
from hisops.inventory.loader import InventoryError
from hisops.targets.runner import LocalRunner

from tests.cleanup.conftest import aged, inventory_with, ssh_runner, tree_state


def _local_inventory(tmp_path: Path, rules: str):
    """Host h1 (local) with a data directory and a clinical path; ``rules``: '- {…}' lines."""
    head = (
        f"- id: h1\n  local: true\n  data_directories: [{tmp_path}/pgdata]\n"
        f"  clinical_paths: [{tmp_path}/emr]\n  cleanup:\n"
    )
    return inventory_with(
        tmp_path, head + "".join(f"  {line.strip()}\n" for line in rules.splitlines())
    )


def _run(catalog, inv, dry_run: bool, runner_for=None, extra=()):
    run_id = catalog.start_cleanup_run("retention_cleanup", f"t-{dry_run}-{id(inv)}", dry_run)
    steps = clean_host_files(
        catalog,
        inv,
        run_id,
        dry_run=dry_run,
        echo=None,
        extra_protected=extra,
        runner_for=runner_for or (lambda h: LocalRunner(h.id)),
    )
    return run_id, steps


def _paths(catalog, run_id, outcomes):
    return sorted(f.path for f in catalog.cleanup_files(run_id, outcomes, limit=100_000))


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "glob,where",
    [
        ("{t}/pgdata/log/*.log", "systems[0].hosts[0].data_directories[0]"),
        ("{t}/emr/**/*.tmp", "systems[0].hosts[0].clinical_paths[0]"),
        ("{t}/backups/*.tmp", "backup_storage.path"),
        ("{t}/*.html", "reports.path"),  # the root contains the reports folder
    ],
)
def test_rule_reaching_a_protected_path_is_a_validation_error(tmp_path, glob, where):
    rules = f'    - {{name: bad, paths: ["{glob.format(t=tmp_path)}"], older_than_days: 7}}\n'
    with pytest.raises(InventoryError) as err:
        _local_inventory(tmp_path, rules)
    text = str(err.value)
    assert "systems[0].hosts[0].cleanup[0].paths[0]: rule 'bad'" in text
    assert where in text and "overlaps protected path" in text


def test_rule_next_to_protected_paths_is_fine(tmp_path):
    inv = _local_inventory(
        tmp_path, f'    - {{name: ok, paths: ["{tmp_path}/logs/**/*.log"], older_than_days: 7}}\n'
    )
    assert inv.find_host("h1").cleanup[0].roots() == [f"{tmp_path}/logs"]


# --- dry run vs real run --------------------------------------------------------------------------


def _mixed_tree(root: Path) -> None:
    for i in range(6):
        aged(root / "app" / f"app.{i}.log", 3 + i * 5)  # 3, 8, 13, 18, 23, 28 days
    aged(root / "app" / "deep" / "x" / "old.log", 40)
    aged(root / "app" / "deep" / "x" / "new.log", 1)
    for days in (20, 30, 40):
        aged(root / "app" / "rotated" / f"r{days}.log", days)  # all old: the newest (20) stays
    aged(root / "app" / "keep.txt", 90)  # not matching the glob
    aged(root / "app" / "we ird 'name'\n.log", 30)  # quotes, space and a newline in the name
    aged(root / "tmp" / "big.tmp", 10, b"y" * 5000)
    aged(root / "tmp" / "small.tmp", 10, b"y" * 10)


RULES = """\
    - {{name: app-logs, paths: ["{t}/logs/app/**/*.log"], older_than_days: 7, keep_newest: 1}}
    - {{name: big-tmp, paths: ["{t}/logs/tmp/*.tmp"], older_than_days: 7, larger_than: 1K}}
"""


def test_dry_run_deletes_nothing_and_lists_exactly_what_the_real_run_does(catalog, tmp_path):
    _mixed_tree(tmp_path / "logs")
    inv = _local_inventory(tmp_path, RULES.format(t=tmp_path))
    before = tree_state(tmp_path / "logs")

    dry_id, dry_steps = _run(catalog, inv, dry_run=True)
    assert tree_state(tmp_path / "logs") == before  # checksums and mtimes unchanged
    planned = _paths(catalog, dry_id, ["would_delete"])

    real_id, steps = _run(catalog, inv, dry_run=False)
    deleted = _paths(catalog, real_id, ["deleted"])
    assert planned == deleted
    app = tmp_path / "logs" / "app"
    assert deleted == sorted(
        str(p)
        for p in [
            app / "app.1.log",
            app / "app.2.log",
            app / "app.3.log",
            app / "app.4.log",
            app / "app.5.log",
            app / "we ird 'name'\n.log",
            app / "deep" / "x" / "old.log",
            app / "rotated" / "r30.log",
            app / "rotated" / "r40.log",
            tmp_path / "logs" / "tmp" / "big.tmp",
        ]
    )
    # keep_newest 1 is per directory: app.0.log (3 days) and deep/x/new.log stay anyway
    assert (app / "deep" / "x" / "new.log").exists() and (app / "app.0.log").exists()
    assert (app / "rotated" / "r20.log").exists()
    assert (app / "keep.txt").exists() and (tmp_path / "logs" / "tmp" / "small.tmp").exists()
    by_rule = {s.item: s for s in steps}
    assert (by_rule["app-logs"].files, by_rule["app-logs"].bytes_freed) == (9, 900)
    assert (by_rule["big-tmp"].files, by_rule["big-tmp"].bytes_freed) == (1, 5000)
    assert [s.bytes_freed for s in dry_steps] == [s.bytes_freed for s in steps]
    rec = {f.path: f for f in catalog.cleanup_files(real_id)}[
        str(tmp_path / "logs" / "tmp" / "big.tmp")
    ]
    assert (rec.size_bytes, rec.rule, rec.action) == (5000, "big-tmp", "delete")
    assert abs(rec.mtime.timestamp() - (time.time() - 10 * 86400)) < 3600
    stored = {s.item: s for s in catalog.cleanup_steps(real_id)}
    assert stored["app-logs"].bytes_freed == 900


def test_compress_instead_of_delete(catalog, tmp_path):
    old = aged(tmp_path / "logs" / "a.log", 20, b"hello hisops\n" * 2000)
    aged(tmp_path / "logs" / "b.log.gz", 20, b"already")
    inv = _local_inventory(
        tmp_path,
        f'    - {{name: gz, paths: ["{tmp_path}/logs/*"], older_than_days: 7, action: compress}}\n',
    )
    run_id, steps = _run(catalog, inv, dry_run=False)
    gz = Path(str(old) + ".gz")
    assert not old.exists() and gz.exists()
    assert gzip.decompress(gz.read_bytes()) == b"hello hisops\n" * 2000
    assert steps[0].files == 1 and steps[0].bytes_freed == 26000 - gz.stat().st_size
    assert _paths(catalog, run_id, ["compressed"]) == [str(old)]


# --- faults ---------------------------------------------------------------------------------------


def test_symlinks_are_not_followed_out_of_the_root(catalog, tmp_path):
    outside = tmp_path / "outside"
    aged(outside / "precious.log", 100)
    aged(tmp_path / "logs" / "own.log", 100)
    (tmp_path / "logs" / "escape").symlink_to(outside)  # a directory link out of the root
    (tmp_path / "logs" / "file-link.log").symlink_to(outside / "precious.log")
    (tmp_path / "linked-root").symlink_to(tmp_path / "logs")
    inv = _local_inventory(
        tmp_path,
        (
            f'    - {{name: logs, paths: ["{tmp_path}/logs/**/*.log"], older_than_days: 7}}\n'
            f'    - {{name: via-link, paths: ["{tmp_path}/linked-root/*.log"], '
            "older_than_days: 7}\n"
        ),
    )
    run_id, steps = _run(catalog, inv, dry_run=False)
    assert (outside / "precious.log").exists()
    assert (
        tmp_path / "logs" / "file-link.log"
    ).is_symlink()  # the link itself is not a regular file
    assert _paths(catalog, run_id, ["deleted"]) == [str(tmp_path / "logs" / "own.log")]
    via = {s.item: s for s in steps}["via-link"]
    assert via.state == "skipped" and via.reason.startswith(r.ROOT_SYMLINK)


def test_a_file_being_written_is_skipped(catalog, tmp_path):
    busy = aged(tmp_path / "logs" / "busy.log", 30)
    idle = aged(tmp_path / "logs" / "idle.log", 30)
    inv = _local_inventory(
        tmp_path, f'    - {{name: logs, paths: ["{tmp_path}/logs/*.log"], older_than_days: 7}}\n'
    )
    with busy.open("ab"):  # held open for writing by this process while the cleanup runs
        run_id, steps = _run(catalog, inv, dry_run=False)
    assert busy.exists() and not idle.exists()
    skipped = catalog.cleanup_files(run_id, ["skipped"])
    assert [(f.path, f.reason) for f in skipped] == [(str(busy), r.OPEN_FOR_WRITING)]
    assert steps[0].details["writers_check"] == "proc"


def _immutable(path: Path) -> None:
    proc = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"chattr +i not possible here: {proc.stderr.strip()}")


def test_permission_denied_is_recorded_and_the_run_continues(catalog, tmp_path):
    """An immutable file (chattr +i) refuses unlink even to root: the real 'permission denied'."""
    stuck = aged(tmp_path / "logs" / "a" / "stuck.log", 30)
    others = [
        aged(tmp_path / "logs" / "a" / "free.log", 30),
        aged(tmp_path / "logs" / "b" / "free.log", 30),
    ]
    _immutable(stuck)
    try:
        inv = _local_inventory(
            tmp_path,
            f'    - {{name: logs, paths: ["{tmp_path}/logs/**/*.log"], older_than_days: 7}}\n',
        )
        run_id, steps = _run(catalog, inv, dry_run=False)
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=False)
    assert stuck.exists() and not any(p.exists() for p in others)
    failed = catalog.cleanup_files(run_id, ["failed"])
    assert [f.path for f in failed] == [str(stuck)]
    assert "Operation not permitted" in failed[0].reason
    assert (steps[0].files, steps[0].failed, steps[0].bytes_freed) == (2, 1, 200)


def test_unreachable_host_is_a_finding_and_other_hosts_are_still_cleaned(catalog, tmp_path, sshd):
    aged(tmp_path / "logs" / "old.log", 30)
    rule = f'{{name: logs, paths: ["{tmp_path}/logs/*.log"], older_than_days: 7}}'
    inv = inventory_with(
        tmp_path,
        f"""\
        - id: h-down
          ssh_conn_id: down
          cleanup: [{rule}]
        - id: h1
          local: true
          cleanup: [{rule}]
        """,
    )

    def runner_for(host):
        return ssh_runner(sshd, host.id, port=1) if host.id == "h-down" else LocalRunner(host.id)

    run_id, steps = _run(catalog, inv, dry_run=False, runner_for=runner_for)
    down, up = steps
    assert (down.target, down.state) == ("h-down", "failed") and down.reason.startswith(
        r.UNREACHABLE
    )
    assert (up.target, up.state, up.files) == ("h1", "ok", 1)
    assert not (tmp_path / "logs" / "old.log").exists()


def test_streamed_over_ssh(catalog, tmp_path, sshd):
    for i in range(30):
        aged(tmp_path / "logs" / f"d{i % 3}" / f"f{i}.log", 10)
    inv = inventory_with(
        tmp_path,
        f"""\
        - id: h-ssh
          ssh_conn_id: loopback
          cleanup: [{{name: logs, paths: ["{tmp_path}/logs/**/*.log"], older_than_days: 7, \
keep_newest: 2}}]
        """,
    )
    run_id, steps = _run(catalog, inv, dry_run=False, runner_for=lambda h: ssh_runner(sshd, h.id))
    assert steps[0].state == "ok" and steps[0].files == 24  # 3 directories keep 2 each
    assert len(list((tmp_path / "logs").rglob("*.log"))) == 6
    assert len(_paths(catalog, run_id, ["deleted"])) == 24


def test_data_directory_reported_by_the_server_stops_the_rule(catalog, tmp_path):
    aged(tmp_path / "logs" / "pg" / "base" / "old.log", 30)
    inv = _local_inventory(
        tmp_path, f'    - {{name: logs, paths: ["{tmp_path}/logs/**/*.log"], older_than_days: 7}}\n'
    )
    server = Protected(str(tmp_path / "logs" / "pg"), ("server", "db1", "data_directory"), DATA_DIR)
    run_id, steps = _run(catalog, inv, dry_run=False, extra=[server])
    assert steps[0].state == "protected" and str(tmp_path / "logs" / "pg") in steps[0].reason
    assert (tmp_path / "logs" / "pg" / "base" / "old.log").exists()
    assert catalog.cleanup_files(run_id) == []


def test_rule_reaching_a_pgbackrest_repository_or_server_data_directory_is_refused(tmp_path):
    from hisops.inventory.loader import load_inventory

    text = f"""version: 1
hospital: 测试医院
maintenance_window: {{start: "01:00", end: "05:00"}}
backup_storage: {{path: {tmp_path}/backups}}
reports: {{path: {tmp_path}/reports}}
systems:
  - id: sys
    name: 测试系统
    name_en: Test
    servers:
      - id: pg-main
        conn_id: pg
        data_directory: {tmp_path}/srv/pgdata
        pitr: {{stanza: main, repo: {{path: {tmp_path}/srv/pgbackrest}}}}
    hosts:
      - id: h1
        local: true
        cleanup: [{{name: bad, paths: ["{tmp_path}/srv/**/*.log"], older_than_days: 7}}]
"""
    path = tmp_path / "inv.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    assert "systems[0].servers[0].pitr.repo.path" in str(err.value)
    assert "systems[0].servers[0].data_directory" in str(err.value)
