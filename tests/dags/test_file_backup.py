"""file_backup end to end with dag.test(): real Airflow, a local and an SSH host (sshd)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hisops.backup.manifest import load_manifest, verify_files

from tests.dags.backup_kit import asset_events, map_labels
from tests.dags.conftest import load_dag


@pytest.fixture
def dag_env(backup_dag_env):
    return backup_dag_env  # tests/dags/backup_kit.py


def test_file_backup_dag_backs_up_local_and_ssh_hosts_and_verifies(dag_env, tmp_path):
    run = load_dag("file_backup").test()
    assert run.state == "success"
    for host in ("h-local", "h-ssh"):
        [record] = dag_env.backups_for(host)
        assert (record.kind, record.state) == ("files", "verified")
        assert verify_files(record.path, load_manifest(record.path)) == []
        assert asset_events(f"hisops://backup/{host}")[-1]["backup_id"] == record.id
    assert map_labels(run, "backup") == ["h-local", "h-ssh"]


def test_file_backup_dag_without_any_backup_paths_is_a_quiet_success(
    dag_env, tmp_path, monkeypatch
):
    text = Path(tmp_path / "inventory.yaml").read_text()
    text = "\n".join(line for line in text.splitlines() if "backup_paths" not in line)
    (tmp_path / "no-paths.yaml").write_text(text + "\n")
    monkeypatch.setenv("HISOPS_INVENTORY", str(tmp_path / "no-paths.yaml"))
    assert load_dag("file_backup").test().state == "success"
    assert dag_env.backups_for("h-local") == []
