"""File backups streamed over SSH / a local pipe, and off-site copies (second path, SFTP),
verified."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hisops.backup.dump import BackupError, DumpSpec, backup_database
from hisops.backup.files import FileSpec, backup_files, verify_file_backup
from hisops.backup.manifest import load_manifest, verify_files
from hisops.backup.offsite import (
    OffsiteError,
    PathDestination,
    SftpDestination,
    copy_backup,
    delete_copy,
)
from hisops.targets.runner import LocalRunner, SshParams, SshRunner


def _tree(root: Path) -> Path:
    conf = root / "etc" / "his"
    (conf / "conf.d").mkdir(parents=True)
    (conf / "his.conf").write_text("[db]\nhost = 10.0.0.5\n")
    (conf / "conf.d" / "ward.ini").write_text("病区 = 内科一病区\n")
    (conf / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # bigger than one stream chunk
    return conf


def _ssh(sshd) -> SshRunner:
    return SshRunner(
        "h-ssh",
        SshParams(
            host=sshd.host, port=sshd.port, username=sshd.user, key_file=str(sshd.client_key)
        ),
    )


def _members(archive: Path) -> list[str]:
    tool = "zstd -dc" if archive.name.endswith(".zst") else "gzip -dc"
    out = subprocess.run(
        f"{tool} {archive} | tar -tf -", shell=True, capture_output=True, text=True, check=True
    )
    return sorted(out.stdout.split())


@pytest.mark.parametrize("via", ["local", "ssh"])
def test_file_backup_streams_archives_with_manifest(via, sshd, catalog, tmp_path):
    conf = _tree(tmp_path / "host")
    runner = LocalRunner("h-local") if via == "local" else _ssh(sshd)
    spec = FileSpec(
        host_id=f"h-{via}",
        system_id="s1",
        paths=[str(conf), str(tmp_path / "host" / "etc" / "his" / "his.conf")],
        storage=tmp_path / "b",
        progress_seconds=0.2,
    )
    try:
        out = backup_files(spec, runner, catalog)
    finally:
        runner.close()
    backup_dir = Path(out.path)
    assert backup_dir.parent == tmp_path / "b" / "_files" / f"h-{via}"
    m = load_manifest(backup_dir)
    assert (m.kind, m.host_id, m.options.format, m.source.paths) == (
        "files",
        f"h-{via}",
        "tar",
        spec.paths,
    )
    assert m.options.compression in ("zstd", "gzip") and len(m.files) == 2
    assert verify_files(backup_dir, m) == []
    first = backup_dir / m.files[0].path
    assert first.name.startswith("01-") and first.stat().st_mode & 0o777 == 0o600
    assert "his/conf.d/ward.ini" in _members(first) and "his/big.bin" in _members(first)
    assert _members(backup_dir / m.files[1].path) == ["his.conf"]
    assert catalog.get_backup(out.backup_id).kind == "files"
    problems, members = verify_file_backup(backup_dir)
    assert problems == [] and members >= 5


def test_file_backup_of_missing_path_fails_and_leaves_nothing(catalog, tmp_path):
    spec = FileSpec(
        host_id="h1", system_id=None, paths=[str(tmp_path / "nope")], storage=tmp_path / "b"
    )
    with pytest.raises(BackupError, match="missing or unreadable.*nope"):
        backup_files(spec, LocalRunner("h1"), catalog)
    assert catalog.backups_for("h1")[0].state == "failed"
    assert [p.name for p in (tmp_path / "b" / "_files" / "h1").iterdir()] == []


def test_damaged_archive_fails_verification(catalog, tmp_path):
    conf = _tree(tmp_path / "host")
    out = backup_files(
        FileSpec("h1", None, [str(conf)], tmp_path / "b"), LocalRunner("h1"), catalog
    )
    archive = next(Path(out.path, "files").iterdir())
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    problems, _ = verify_file_backup(out.path)
    assert problems and archive.name in problems[0]


@pytest.fixture
def db_backup(pg, his_db, catalog, tmp_path):
    spec = DumpSpec(
        database_id="his_emr", system_id="emr", dsn=pg.dsn(his_db), storage=tmp_path / "b"
    )
    return Path(backup_database(spec, catalog).path)


def test_offsite_copy_to_second_path_is_verified_and_idempotent(db_backup, tmp_path):
    result = copy_backup(db_backup, tmp_path / "b", PathDestination(), str(tmp_path / "nas"))
    copy = tmp_path / "nas" / "his_emr" / db_backup.name
    assert (
        result.destination == str(copy) and result.files == len(load_manifest(db_backup).files) + 1
    )
    assert verify_files(copy, load_manifest(copy)) == []
    assert copy.stat().st_mode & 0o777 == 0o700
    assert not list((tmp_path / "nas" / "his_emr").glob(".partial-*"))
    again = copy_backup(db_backup, tmp_path / "b", PathDestination(), str(tmp_path / "nas"))
    assert again.already_present
    victim = next((copy / "dump").glob("*.dat.gz"))
    victim.write_bytes(victim.read_bytes() + b"x")
    with pytest.raises(OffsiteError, match=f"differs.*{victim.name}"):
        copy_backup(db_backup, tmp_path / "b", PathDestination(), str(tmp_path / "nas"))
    assert delete_copy(PathDestination(), str(tmp_path / "nas"), db_backup, tmp_path / "b") == str(
        copy
    )
    assert not copy.exists()


def test_offsite_copy_over_sftp(db_backup, sshd, tmp_path):
    runner = _ssh(sshd)
    runner.run("true")
    sftp = runner._client.open_sftp()
    try:
        dest = SftpDestination(sftp, sshd.host)
        result = copy_backup(db_backup, tmp_path / "b", dest, str(tmp_path / "remote"))
        assert result.destination.startswith("sftp://") and result.bytes > 0
        copy = tmp_path / "remote" / "his_emr" / db_backup.name  # sshd runs on this machine
        assert verify_files(copy, load_manifest(copy)) == []
        assert (copy / "manifest.json").stat().st_mode & 0o777 == 0o600
        assert delete_copy(dest, str(tmp_path / "remote"), db_backup, tmp_path / "b")
        assert not copy.exists()
    finally:
        sftp.close()
        runner.close()
