"""targets.postgres is the one PostgreSQL access module (issue 7): nobody else connects or
rebuilds the libpq environment, tool discovery or pg_ctl stop."""

from __future__ import annotations

import re
from pathlib import Path

INCLUDE = Path(__file__).resolve().parents[2] / "include" / "hisops"
#: still being converted by the engineers who own them; remove an entry once it is converted
PENDING: set[str] = set()
OWN_HOME = [
    (re.compile(r"psycopg2\.connect\("), "connect()"),
    (re.compile(r"^def libpq_env\(", re.M), "libpq_env()"),
    (re.compile(r"\"runuser\", \"-u\""), "as_os_user()"),
    (re.compile(r"\"/usr/lib/postgresql\"|'/usr/lib/postgresql'"), "installed_tools()/PG_ROOT"),
    (re.compile(r"\"pg_ctl\",\s*\"stop\""), "pg_ctl_stop_argv()"),
]


def _sources() -> dict[str, str]:
    return {
        p.relative_to(INCLUDE).as_posix(): p.read_text(encoding="utf-8")
        for p in INCLUDE.rglob("*.py")
        if p.relative_to(INCLUDE).parts[0] != "targets"
    }


def test_postgres_access_lives_in_targets_postgres():
    sources = _sources()
    assert "backup/dump.py" in sources and "verify/scratch.py" in sources  # the scan sees them
    offenders = sorted(
        f"{path}: use hisops.targets.postgres.{helper}"
        for path, text in sources.items()
        for pattern, helper in OWN_HOME
        if pattern.search(text) and not (helper == "connect()" and path in PENDING)
    )
    assert offenders == []


def test_the_scan_would_see_a_raw_connect():
    text = 'conn = psycopg2.connect(dsn, connect_timeout=15, application_name="x")'
    assert OWN_HOME[0][0].search(text)
    assert OWN_HOME[4][0].search('argv = ["pg_ctl", "stop", "-D", str(path)]')
    assert OWN_HOME[2][0].search('return ["runuser", "-u", user, "--", *argv]')
