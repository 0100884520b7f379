"""Fixtures for the restore-drill and restore tests: a synthetic HIS database, real backups, a
catalog."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hisops.backup.dump import BackupOutcome, DumpSpec, backup_database

SMALL_SCALE = 0.02  # a few hundred to a few thousand rows per table: a drill takes seconds
#: a table with a compound primary key (the synthetic schema has only single-column keys)
EXTRA_SQL = """
CREATE TABLE ward_bed (ward text NOT NULL, bed integer NOT NULL,
                       patient_id integer REFERENCES patient,
                       note text, PRIMARY KEY (ward, bed));
INSERT INTO ward_bed SELECT 'W' || (i % 5), i, (SELECT min(patient_id) FROM patient) + i, NULL
  FROM generate_series(1, 40) AS i;
"""


def make_his_db(pg, name: str) -> str:
    from hisops.synth.generate import generate

    pg.create_database(name)
    generate(pg.dsn(name), SMALL_SCALE, seed=11, log=lambda _m: None)
    pg.execute(EXTRA_SQL, dbname=name)
    return name


@pytest.fixture(scope="module")
def source_db(pg) -> Iterator[str]:
    """A synthetic HIS database shared by a module's tests (they only read it)."""
    name = make_his_db(pg, f"his_src_{uuid.uuid4().hex[:8]}")
    yield name
    pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def his_db(pg) -> Iterator[str]:
    """A synthetic HIS database of the test's own (restore tests overwrite it)."""
    name = make_his_db(pg, f"his_{uuid.uuid4().hex[:8]}")
    yield name
    pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for leftover in _databases_like(pg, f"{name}_before_restore_%"):
        pg.execute(f'DROP DATABASE IF EXISTS "{leftover}" WITH (FORCE)')


def _databases_like(pg, pattern: str) -> list[str]:
    import psycopg2

    with psycopg2.connect(pg.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (pattern,))
        names = [r[0] for r in cur.fetchall()]
    conn.close()
    return names


@pytest.fixture
def make_backup(pg, catalog, tmp_path) -> Callable[..., BackupOutcome]:
    """Factory: a real hisops backup (pg_dump -Fd, manifest, catalog row 'completed') of a
    database."""

    def make(dbname: str, database_id: str = "d1", secret: str | None = None) -> BackupOutcome:
        spec = DumpSpec(
            database_id=database_id,
            system_id="s1",
            dsn=pg.dsn(dbname),
            storage=tmp_path / "backups",
            jobs=2,
            compress=1,
            encryption_secret=secret,
            encryption_conn_id="vf_key" if secret else None,
            actor="test",
        )
        return backup_database(spec, catalog)

    return make


def scratch_databases(pg) -> list[str]:
    return _databases_like(pg, "hisops\\_drill\\_%") + _databases_like(pg, "hisops\\_restore\\_%")


@pytest.fixture
def evidence_root(tmp_path) -> Path:
    return tmp_path / "reports" / "verification"
