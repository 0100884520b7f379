"""Staging: checksums (and decryption), then pg_restore into ``hisops_restore_…`` beside production.

Production is never touched here; a failed run leaves at most the staging database, which the
DAG's teardown drops (guarded by :data:`hisops.restore.names.STAGING_RE`).
"""

from __future__ import annotations

import time
from pathlib import Path

from hisops.restore.names import STAGING_RE
from hisops.restore.request import RestorePlan
from hisops.targets.postgres import dsn_with
from hisops.verify import scratch


def stage(
    plan: RestorePlan,
    server_dsn: str,
    *,
    jobs: int = 2,
    pg_bindir: str | None = None,
    encryption_key: str | None = None,
) -> float:
    """Checksums, then pg_restore into the staging database; returns the pg_restore seconds (the
    RTO part). ``scratch.RestoreError`` names the file or the pg_restore message on failure."""
    from hisops.backup.manifest import load_manifest, verify_files

    backup_dir = Path(plan.backup_dir)
    manifest = load_manifest(backup_dir)
    problems = verify_files(backup_dir, manifest, workers=max(2, jobs))
    if problems:
        raise scratch.RestoreError(
            "备份文件校验失败 backup files do not match the manifest: " + "; ".join(problems)
        )
    tool = scratch.find_pg_restore(pg_bindir, manifest.tool.pg_dump_version)
    scratch.assert_droppable(plan.staging_db, STAGING_RE)
    scratch.create_database(server_dsn, plan.staging_db)
    dump = backup_dir / "dump"
    if manifest.encryption is not None:
        return _restore_encrypted(plan, server_dsn, dump, tool, jobs, encryption_key)
    run = scratch.run_pg_restore(
        dump, dsn_with(server_dsn, plan.staging_db), jobs=jobs, tool=tool, keep_owners=True
    )
    return run.seconds


def _restore_encrypted(
    plan: RestorePlan, server_dsn: str, dump: Path, tool: Path, jobs: int, key: str | None
) -> float:
    import shutil
    import tempfile

    from hisops.backup.crypto import decrypt_tree

    if not key:
        raise scratch.RestoreError(
            "备份已加密但没有密钥 backup is encrypted but no key is configured"
        )
    work = Path(tempfile.mkdtemp(prefix=".hisops-restore-", dir=Path(plan.backup_dir).parent))
    try:
        start = time.monotonic()
        decrypt_tree(dump, work / "dump", key)
        decrypt_seconds = time.monotonic() - start
        run = scratch.run_pg_restore(
            work / "dump",
            dsn_with(server_dsn, plan.staging_db),
            jobs=jobs,
            tool=tool,
            keep_owners=True,
        )
        return round(run.seconds + decrypt_seconds, 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def drop_staging(server_dsn: str, staging_db: str) -> bool:
    """Drop a staging database a failed run left (True if it existed); refuses any other name."""
    return scratch.drop_database(server_dsn, staging_db, STAGING_RE)
