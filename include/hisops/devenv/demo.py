"""The one-command demo: private PostgreSQL, synthetic hospital, catalog, Airflow with real roles.

`./demo.sh` (= `hisops demo up`) is safe to run twice; `./demo.sh down` stops everything,
`./demo.sh clean` also deletes `.demo/`. Nothing outside `.demo/` and ports 55432/8080/8025
is touched.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import zlib
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote
from zoneinfo import ZoneInfo

from hisops.devenv.airflow_env import REPO, airflow_env
from hisops.devenv.pgcluster import PgCluster, port_in_use

if TYPE_CHECKING:
    from psycopg2.sql import Identifier

DEMO = Path(os.environ.get("HISOPS_DEMO_HOME", REPO / ".demo"))
PG_PORT = int(os.environ.get("HISOPS_DEMO_PG_PORT", "55432"))
API_PORT = int(os.environ.get("HISOPS_DEMO_API_PORT", "8080"))
MAIL_PORT = int(os.environ.get("HISOPS_DEMO_MAIL_PORT", "8025"))
SCALE = float(os.environ.get("HISOPS_DEMO_SCALE", "0.02"))
INVENTORY = REPO / "inventory" / "hospital.example.yaml"
#: the example inventory with a maintenance window spanning the day, so db_maintenance can be
#: shown at any hour
DEMO_INVENTORY = DEMO / "inventory.yaml"
TUNING_DB = "his_outpatient"  # gets the planted tuning problems (hisops.devenv.tuning_plant)
HIS_DATABASES = ("his_outpatient", "his_inpatient", "his_emr")
USERS = (
    ("admin", "超级管理员"),
    ("sysadmin", "系统管理员"),
    ("operator", "运维人员"),
    ("viewer", "普通用户"),
    ("auditor", "审计管理员"),
)
#: the PostgreSQL role behind connection hisops_airflow_db: reads FAB's user/role tables only
ROLE_READER = "hisops_role_reader"
ROLE_TABLES = ("ab_user", "ab_role", "ab_user_role")
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer", "mail-sink")


def say(msg: str) -> None:
    print(f"[hisops demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


PITR_STANZA = "hisops-demo"


def pitr_dir() -> Path:
    """pgBackRest's folder (config, repository): ``.demo/pgbackrest``, or beside the cluster's
    files outside the checkout when the server's OS user cannot enter ``.demo`` (a clone in a
    0700 home: archive_command runs as that user and must read the config)."""
    DEMO.mkdir(parents=True, exist_ok=True)
    inside = PgCluster(DEMO / "pg", PG_PORT)
    if inside.server_can_enter(DEMO):
        return DEMO / "pgbackrest"
    return inside.outside_dir() / "pgbackrest"


def cluster() -> PgCluster:
    """The demo's private cluster; it archives WAL to a local pgBackRest repository
    (:func:`pitr_dir`, 0700), configured by the pitr_backup DAG from the inventory."""
    config = pitr_dir() / "pgbackrest.conf"  # = inventory servers[pg-main].pitr.config_path
    archive = (
        f"wal_level = replica\narchive_mode = on\narchive_timeout = 60\n"
        f"archive_command = 'pgbackrest --config={config} --stanza={PITR_STANZA} "
        "archive-push %p'\n"
    )
    return PgCluster(DEMO / "pg", PG_PORT, socket=True, extra_conf=archive)


def _env(pg: PgCluster) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        airflow_env(
            DEMO / "airflow",
            pg.sqlalchemy_url("airflow"),
            api_port=API_PORT,
            inventory=write_demo_inventory(pg),
        )
    )
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def _credentials() -> dict[str, str]:
    path = DEMO / "credentials.json"
    creds = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in (*(u for u, _ in USERS), ROLE_READER) if name not in creds]
    if missing:  # first run, or a demo from before a user was added
        creds.update({name: secrets.token_urlsafe(12) for name in missing})
        _private_write(path, json.dumps(creds, indent=1))
    return creds


def _private_write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)


def _airflow_login_role(pg: PgCluster, name: str, password: str) -> Identifier:
    """The login role ``name`` (created if missing; never a superuser, password set) that may
    connect to the airflow database; returns its SQL identifier for the grants."""
    from psycopg2 import sql

    role = sql.Identifier(name)
    pg.execute(
        sql.SQL(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) "
            "THEN CREATE ROLE {} LOGIN; END IF; END $$"
        ).format(sql.Literal(name), role)
    )
    pg.execute(
        sql.SQL("ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
            role, sql.Literal(password)
        )
    )
    pg.execute(sql.SQL("GRANT CONNECT ON DATABASE airflow TO {}").format(role))
    return role


def ensure_role_reader(pg: PgCluster, password: str) -> None:
    """A login role that may only SELECT FAB's ab_user/ab_role/ab_user_role (not a superuser)."""
    from psycopg2 import sql

    role = _airflow_login_role(pg, ROLE_READER, password)
    tables = sql.SQL(", ").join(sql.Identifier(t) for t in ROLE_TABLES)
    pg.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(tables, role), dbname="airflow")


# --- data ---------------------------------------------------------------------------------------
def write_demo_inventory(pg: PgCluster) -> Path:
    """inventory/hospital.example.yaml, maintenance window 00:00-23:59 (README documents it);
    the server's paths where this cluster really has them (outside a 0700 checkout)."""
    import re

    text = INVENTORY.read_text(encoding="utf-8")
    real = {
        ".demo/pgbackrest/": f"{pitr_dir()}/",
        ".demo/pg/data": str(pg.datadir.resolve()),
        ".demo/pg/sock": str(pg.socket_dir),
        ".demo/pg/server.log": str(pg.logfile),
    }
    for inside, path in real.items():  # only where a value starts: ": x", "{path: x", "[x"
        for lead in (": ", "{path: ", "["):
            text = text.replace(lead + inside, lead + path)
    text = re.sub(
        r'(maintenance_window:[^\n]*\n\s+start: )"[0-9:]+"(\n\s+end: )"[0-9:]+"',
        r'\1"00:00"\2"23:59"',
        text,
        count=1,
    )
    DEMO.mkdir(parents=True, exist_ok=True)
    DEMO_INVENTORY.write_text(text, encoding="utf-8")
    return DEMO_INVENTORY


def prepare_databases(pg: PgCluster) -> None:
    from hisops.catalog.migrate import upgrade
    from hisops.synth.generate import generate

    for name in ("airflow", "hisops_catalog", *HIS_DATABASES):
        pg.create_database(name)
    for name in HIS_DATABASES:
        if not _has_his_tables(pg, name):
            say(f"生成合成医院数据 generating synthetic hospital data in {name} (scale {SCALE}) …")
            generate(
                pg.dsn(name),
                scale=SCALE,
                seed=zlib.crc32(name.encode()) % 1000,
                log=lambda m: say("  " + m),
            )
    from hisops.devenv.tuning_plant import plant

    say(f"预埋调优问题 planting tuning problems in {TUNING_DB} (pharmacy_dispense_log) …")
    plant(pg.dsn(TUNING_DB))
    upgrade(pg.sqlalchemy_url("hisops_catalog"))
    say("运维目录库 ops catalog schema is at head")


def _has_his_tables(pg: PgCluster, dbname: str) -> bool:
    conn = pg.connect(dbname, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('public.patient') IS NOT NULL")
            return bool(cur.fetchone()[0])
    finally:
        conn.close()


# --- airflow ------------------------------------------------------------------------------------
CLEANER = (
    "hisops_airflow_cleaner"  # the role behind hisops_airflow_clean (retention_cleanup's db clean)
)


def _cleaner_password() -> str:
    path = DEMO / "airflow_cleaner.pw"
    if not path.exists():
        _private_write(path, secrets.token_urlsafe(12))
    return path.read_text().strip()


def ensure_airflow_cleaner(pg: PgCluster) -> None:
    """A login role with exactly the grants `airflow db clean` needs (not a superuser)."""
    from psycopg2 import sql

    from hisops.cleanup.airflow_meta import CLEANER_GRANTS

    role = _airflow_login_role(pg, CLEANER, _cleaner_password())
    for grant in CLEANER_GRANTS:
        pg.execute(sql.SQL(grant).format(role=role), dbname="airflow")


def bootstrap_airflow(pg: PgCluster, env: dict[str, str]) -> None:
    say("Airflow 元数据库迁移 migrating the Airflow metadata database …")
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    ensure_airflow_cleaner(pg)
    ensure_role_reader(pg, _credentials()[ROLE_READER])
    script = (
        "import json, sys\n"
        "from hisops.airflow.roles import sync_roles, ensure_user\n"
        "from hisops.devenv.demo import register_connections\n"
        "from hisops.airflow.pools import ensure_pools\n"
        "for line in sync_roles(): print(line)\n"
        "creds, users = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
        "for user, role in users: print(user, role, ensure_user(user, role, creds[user]))\n"
        "register_connections()\n"
        "for line in ensure_pools(): print(line)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(_credentials()), json.dumps(USERS)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.strip().splitlines():
        say("  " + line)


def register_connections() -> None:
    """Upsert the demo's Airflow connections (passwords live only in Airflow, encrypted)."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    pg = cluster()

    def postgres(
        conn_id: str, schema: str, login: str = pg.user, password: str = pg.password
    ) -> Connection:
        return Connection(
            conn_id=conn_id,
            conn_type="postgres",
            host=pg.host,
            port=pg.port,
            login=login,
            password=password,
            schema=schema,
        )

    conns = [postgres(name, name) for name in (*HIS_DATABASES, "hisops_catalog")]
    conns.append(postgres("hisops_pg_main", "postgres"))  # the server (PITR)
    # restore_database reads FAB's user/role tables to check the triggering user's role:
    # through a role that may SELECT those three tables and nothing else
    conns.append(postgres("hisops_airflow_db", "airflow", ROLE_READER, _credentials()[ROLE_READER]))
    # retention_cleanup runs `airflow db clean` as a role with only the grants it needs
    conns.append(postgres("hisops_airflow_clean", "airflow", CLEANER, _cleaner_password()))
    conns.append(
        Connection(
            conn_id="hisops_smtp",
            conn_type="smtp",
            host="127.0.0.1",
            port=MAIL_PORT,
            extra=json.dumps(
                {"from_email": "hisops@hospital.example", "disable_tls": True, "disable_ssl": True}
            ),
        )
    )
    with create_session() as session:
        for conn in conns:
            old = session.query(Connection).filter(Connection.conn_id == conn.conn_id).one_or_none()
            if old is not None:
                session.delete(old)
                session.flush()
            session.add(conn)
    print(f"connections: {', '.join(c.conn_id for c in conns)}")


def _pidfile(name: str) -> Path:
    return DEMO / "run" / f"{name}.pid"


def _alive(name: str) -> bool:
    try:
        os.kill(int(_pidfile(name).read_text()), 0)
        return True
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False


def _command(name: str) -> list[str]:
    if name == "mail-sink":
        for sub in ("cur", "new", "tmp"):  # a Maildir; aiosmtpd's Mailbox won't create these itself
            (DEMO / "mail" / sub).mkdir(parents=True, exist_ok=True)
        return [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{MAIL_PORT}",
            "-c",
            "aiosmtpd.handlers.Mailbox",
            str(DEMO / "mail"),
        ]
    if name == "api-server":
        return [
            sys.executable,
            "-m",
            "airflow",
            "api-server",
            "--host",
            "127.0.0.1",
            "--port",
            str(API_PORT),
            "--workers",
            "1",
        ]
    if name in ("scheduler", "triggerer"):
        # one host: the api-server reads task logs from the shared folder, so no log server
        # (Airflow's would listen on every interface)
        return [sys.executable, "-m", "airflow", name, "--skip-serve-logs"]
    return [sys.executable, "-m", "airflow", name]


def start_services(env: dict[str, str]) -> None:
    for folder in ("run", "logs", "reports", "mail"):
        (DEMO / folder).mkdir(parents=True, exist_ok=True, mode=0o700)
        (DEMO / folder).chmod(0o700)
    for name in SERVICES:
        if _alive(name):
            say(f"{name} already running")
            continue
        if name == "api-server" and port_in_use(API_PORT):
            raise SystemExit(
                f"port {API_PORT} is used by another program; set HISOPS_DEMO_API_PORT"
            )
        log = os.fdopen(
            os.open(DEMO / "logs" / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            "ab",
        )
        os.chmod(log.fileno(), 0o600)
        # umask 077: everything the services write (task logs, reports, mails) is private
        proc = subprocess.Popen(
            _command(name),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
            umask=0o077,
        )
        _pidfile(name).write_text(str(proc.pid))
        say(f"started {name} (pid {proc.pid}, log .demo/logs/{name}.log)")


# --- REST checks ---------------------------------------------------------------------------------
def _api(
    method: str, path: str, token: str | None = None, body: dict | None = None
) -> tuple[int, dict]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = httpx.request(
        method, f"http://localhost:{API_PORT}{path}", json=body, headers=headers, timeout=30
    )
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, {"text": resp.text}


def wait_for(what: str, probe, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}; see .demo/logs/")
        time.sleep(2)


def _healthy() -> bool:
    try:
        return _api("GET", "/api/v2/monitor/health")[0] == 200
    except Exception:
        return False


def token(username: str, password: str) -> str:
    code, body = _api("POST", "/auth/token", body={"username": username, "password": password})
    if code not in (200, 201):
        raise RuntimeError(f"login failed for {username}: {code} {body}")
    return body["access_token"]


def unpause(tok: str, dag_id: str) -> None:
    """New DAGs start paused (as in production); the demo unpauses the ones it runs, explicitly.

    An unpaused scheduled DAG (db_backup, daily_inspection) then also runs at its next cron time
    while the demo is up — intended: the demo shows the nightly routine. catchup=False and the
    cron timetables do not run a missed interval at unpause time."""
    wait_for(
        f"DAG {dag_id} to be parsed",
        lambda: _api("GET", f"/api/v2/dags/{dag_id}", tok)[0] == 200,
        180,
    )
    code, body = _api("PATCH", f"/api/v2/dags/{dag_id}", tok, {"is_paused": False})
    if code != 200:
        raise SystemExit(f"could not unpause {dag_id}: {code} {body}")


def trigger_and_wait(tok: str, dag_id: str, timeout: float = 600, conf: dict | None = None) -> str:
    """Unpause, trigger and wait for one DAG run; its final state ('absent' if no such DAG)."""
    unpause(tok, dag_id)
    code, body = _api(
        "POST", f"/api/v2/dags/{dag_id}/dagRuns", tok, {"logical_date": None, "conf": conf or {}}
    )
    if code not in (200, 201):
        raise SystemExit(f"could not trigger {dag_id}: {code} {body}")
    run_id = body["dag_run_id"]
    say(f"运行中 running {dag_id}: {run_id}")
    state = {"value": "queued"}

    def done() -> bool:
        state["value"] = _api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", tok)[1].get("state")
        return state["value"] in ("success", "failed")

    wait_for(f"the {dag_id} run", done, timeout)
    say(f"{dag_id}: {state['value']}")
    return state["value"]


def _dag_exists(tok: str, dag_id: str) -> bool:
    return (REPO / "dags" / f"{dag_id}.py").exists() and _api("GET", f"/api/v2/dags/{dag_id}", tok)[
        0
    ] == 200


def wait_for_verification(tok: str, timeout: float = 900) -> str:
    """backup_verification is triggered by the backup assets; wait for its runs to finish."""

    def finished() -> bool:
        runs = _api("GET", "/api/v2/dags/backup_verification/dagRuns?limit=50", tok)[1].get(
            "dag_runs", []
        )
        return bool(runs) and all(r["state"] in ("success", "failed") for r in runs)

    wait_for("the restore drills (backup_verification)", finished, timeout)
    runs = _api("GET", "/api/v2/dags/backup_verification/dagRuns?limit=50", tok)[1]["dag_runs"]
    return ", ".join(sorted(r["state"] for r in runs))


def seed_old_logs(
    folder: Path | None = None, days: tuple[int, ...] = (1, 3, 16, 20, 25, 30, 45, 60)
) -> list[Path]:
    """Application logs with mtimes in the past for retention_cleanup (rule his-app-logs).

    Kept when present."""
    folder = folder or DEMO / "hislogs"
    made = []
    for sub in ("outpatient", "inpatient"):
        for age in days:
            path = folder / sub / f"his-app.{age:03d}.log"
            if not path.exists():
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                path.write_text(
                    f"[demo] 门诊/住院应用日志 application log, {age} days old\n" * 2000
                )
                then = time.time() - age * 86400
                os.utime(path, (then, then))
                made.append(path)
    return made


def _import_errors(tok: str) -> list[dict]:
    return _api("GET", "/api/v2/importErrors", tok)[1].get("import_errors", [])


# --- security_audit: the demo's own deliberate weaknesses ---------------------------------------
#: what the demo leaves weak on purpose (a private cluster on a laptop) and security_audit must
#: report on every demo database: check id → the weakness (README "Demo")
DEMO_WEAKNESSES: dict[str, str] = {
    "security.ssl": "ssl = off（无 TLS no TLS）",
    "security.connection_logging": (
        "log_connections/log_disconnections = off; log_line_prefix 无用户与来源地址 "
        "without user (%u) and address (%h)"
    ),
    "security.pgaudit": "pgaudit 已加载但 pgaudit.log 未配置 loaded, pgaudit.log unset",
    "security.data_checksums": "无数据校验和 initdb without --data-checksums",
    "security.connection_role": "运维连接使用超级用户 the ops connections log in as the superuser",
}


def weaknesses_found(findings: list, databases: tuple[str, ...]) -> dict[str, list[str]]:
    """check id of each deliberate weakness → the databases security_audit reported it on."""
    found: dict[str, list[str]] = {check: [] for check in DEMO_WEAKNESSES}
    for f in findings:
        if f.check_id in found and f.target_id in databases and f.severity in ("warn", "critical"):
            found[f.check_id].append(f.target_id)
    return {check: sorted(dbs) for check, dbs in found.items()}


def security_weaknesses(pg: PgCluster) -> dict[str, str]:
    """Banner line: how many of the demo's deliberate weaknesses the last security_audit found."""
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.loader import load_inventory

    repo = CatalogRepository.from_url(pg.sqlalchemy_url("hisops_catalog"))
    try:
        run = next(
            (r for r in repo.recent_inspection_runs(50) if r.dag_id == "security_audit"), None
        )
        if run is None:
            return {"security_audit 演示弱点 weaknesses": "no run"}
        inv = load_inventory(DEMO_INVENTORY)
        dbs = tuple(db.id for system in inv.systems for db in system.databases)
        found = weaknesses_found(repo.findings_for(run.id), dbs)
    finally:
        repo.dispose()
    complete = [c for c, where in found.items() if set(where) == set(dbs)]
    missed = [c.removeprefix("security.") for c in DEMO_WEAKNESSES if c not in complete]
    text = f"{len(complete)}/{len(DEMO_WEAKNESSES)} found on all {len(dbs)} databases"
    return {"security_audit 演示弱点 weaknesses": text + (f"; MISSED {missed}" if missed else "")}


# --- commands ------------------------------------------------------------------------------------
def up() -> int:
    t0 = time.monotonic()
    DEMO.mkdir(parents=True, exist_ok=True)
    pg = cluster()
    say(f"私有 PostgreSQL private cluster in .demo/pg on 127.0.0.1:{PG_PORT}")
    pg.start()
    prepare_databases(pg)
    seed_old_logs()
    env = _env(pg)
    bootstrap_airflow(pg, env)
    start_services(env)
    wait_for("the api-server", _healthy, 240)
    creds = _credentials()
    tok = token("admin", creds["admin"])
    state = trigger_and_wait(tok, "hisops_selfcheck")
    others = demo_runs(tok)
    others.update(security_weaknesses(pg))
    errors = _import_errors(tok)
    _banner(creds, state, others, errors, time.monotonic() - t0)
    return 0 if state == "success" and not errors else 1


def demo_runs(tok: str) -> dict[str, str]:
    """First backups (→ restore drills by asset), the first inspection, security audit and a cleanup
    preview, so the UI has content."""
    states: dict[str, str] = {}
    if _dag_exists(
        tok, "backup_verification"
    ):  # asset-triggered: must be unpaused before the backups
        unpause(tok, "backup_verification")
    if _dag_exists(tok, "pitr_backup"):  # first: the stanza, so WAL archiving works from now on
        states["pitr_backup"] = trigger_and_wait(
            tok, "pitr_backup", timeout=900, conf={"type": "full"}
        )
    for dag_id in ("db_backup", "daily_inspection", "security_audit"):
        if _dag_exists(tok, dag_id):
            states[dag_id] = trigger_and_wait(tok, dag_id, timeout=900)
    if "db_backup" in states and _dag_exists(tok, "backup_verification"):
        states["backup_verification"] = wait_for_verification(tok)
    if _dag_exists(tok, "retention_cleanup"):  # a manual run previews: lists the seeded old logs
        states["retention_cleanup (预演 dry run)"] = trigger_and_wait(
            tok, "retention_cleanup", timeout=600
        )
    states.update(change_runs(tok))
    if _dag_exists(tok, "kpi_report"):  # 运维考核 KPI report of the demo's data: today, ad hoc
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
        states["kpi_report"] = trigger_and_wait(
            tok,
            "kpi_report",
            timeout=600,
            conf={"start": today, "end": today, "evidence_pack": False},
        )
    states.update(tuning_runs(tok))
    return states


CHANGE_DB = "his_inpatient"  # the demo's two changes (change_runs) go to the inpatient system
CHANGE_PREFIX = "演示 demo"
#: the successful change (a new table); the reverted one copies a staging table that is emptied
#: while the change waits for approval — its dry run passed, its verify script fails after apply
DEMO_CHANGES = (
    {
        "title": f"{CHANGE_PREFIX}: 新增病区床位表 add the ward bed table",
        "reason": "住院部床位管理上线 ward bed management goes live",
        "impact": "新表，无停机 new table, no downtime",
        "deploy_sql": "CREATE TABLE ward_bed (id int PRIMARY KEY, ward text NOT NULL);",
        "verify_sql": "SELECT id, ward FROM ward_bed WHERE false;",
        "revert_sql": "DROP TABLE ward_bed;",
    },
    {
        "title": f"{CHANGE_PREFIX}: 导入床位快照 import the bed snapshot",
        "reason": "从暂存表导入床位快照 import the bed snapshot from the staging table",
        "impact": "新表，无停机；快照不得为空 new table, no downtime; must not be empty",
        "deploy_sql": "CREATE TABLE bed_snapshot AS SELECT * FROM bed_staging;",
        "verify_sql": "SELECT 1 / (SELECT count(*) FROM bed_snapshot);  -- fails when empty",
        "revert_sql": "DROP TABLE bed_snapshot;",
    },
)


def change_runs(tok: str) -> dict[str, str]:
    """变更管理: one SQL change that verifies and one whose verify script fails, so the revert runs
    and verify passes again. Requested by admin, approved by sysadmin through the HITL REST API
    (what 需要操作 Required actions calls). Shown once: a second `./demo.sh` keeps the first two."""
    from hisops.catalog.repository import CatalogRepository

    if not _dag_exists(tok, "change_request"):
        return {}
    pg = cluster()
    repo = CatalogRepository.from_url(pg.sqlalchemy_url("hisops_catalog"))
    try:
        shown = [c for c in repo.recent_changes(200) if c.title.startswith(CHANGE_PREFIX)]
    finally:
        repo.dispose()
    if shown:
        return {
            f"change_request #{c.id}": f"{c.state} (已演示 shown earlier)" for c in reversed(shown)
        }
    approver = token("sysadmin", _credentials()["sysadmin"])
    states: dict[str, str] = {}
    ok, reverted = DEMO_CHANGES
    states["change_request (成功 success)"] = _change(tok, approver, ok)
    pg.execute(
        "CREATE TABLE IF NOT EXISTS bed_staging (id int, ward text); "
        "INSERT INTO bed_staging VALUES (1, '心内科'), (2, '骨科')",
        dbname=CHANGE_DB,
    )
    states["change_request (回退 reverted)"] = _change(
        tok,
        approver,
        reverted,
        before_approval=lambda: pg.execute("TRUNCATE bed_staging", dbname=CHANGE_DB),
    )
    return states


HITL_SETTLE_S = 10  # s between an approval request appearing and the demo answering it


def _change(tok: str, approver: str, change: dict, before_approval=None) -> str:
    """Trigger change_request, answer its approval as ``approver``, wait; 'run state · change'."""
    conf = {"kind": "sql", "database_id": CHANGE_DB, **change}
    unpause(tok, "change_request")
    code, body = _api(
        "POST", "/api/v2/dags/change_request/dagRuns", tok, {"logical_date": None, "conf": conf}
    )
    if code not in (200, 201):
        raise SystemExit(f"could not trigger change_request: {code} {body}")
    run_id = body["dag_run_id"]
    say(f"运行中 running change_request: {run_id} — {change['title']}")
    run_path = f"/api/v2/dags/change_request/dagRuns/{quote(run_id, safe='')}"
    seen: dict = {}

    def waiting_or_done() -> bool:
        listed = _api("GET", "/api/v2/dags/change_request/dagRuns/~/hitlDetails", tok)[1]
        mine = [
            h
            for h in listed.get("hitl_details", [])
            if h["task_instance"]["dag_run_id"] == run_id and not h.get("response_received")
        ]
        seen["hitl"] = bool(mine)
        return bool(mine) or _api("GET", run_path, tok)[1].get("state") in ("success", "failed")

    wait_for(f"the approval request of {run_id}", waiting_or_done, 600)
    if seen["hitl"]:
        # Airflow 3.3 race: an answer that lands before the scheduler has handled the executor's
        # "awaiting input" event makes it fail the resumed try (seen: answered 0.5 s after the
        # pause → 'finished with state success, but ... queued' → failed). People take longer.
        time.sleep(HITL_SETTLE_S)
        if before_approval:
            before_approval()
        code, body = _api(
            "PATCH",
            f"{run_path}/taskInstances/approve/-1/hitlDetails",
            approver,
            {"chosen_options": ["Approve"], "params_input": {}},
        )
        say(f"审批 approved by sysadmin: {code}")
    final: dict = {}

    def done() -> bool:
        final["state"] = _api("GET", run_path, tok)[1].get("state")
        return final["state"] in ("success", "failed")

    wait_for(f"the change_request run {run_id}", done, 900)
    return f"{final['state']} · {_change_state(run_id)}"


def _change_state(run_id: str) -> str:
    from hisops.catalog.repository import CatalogRepository

    repo = CatalogRepository.from_url(cluster().sqlalchemy_url("hisops_catalog"))
    try:
        found = [c for c in repo.recent_changes(50) if c.dag_run_id == run_id]
    finally:
        repo.dispose()
    if not found:
        return "no change recorded"
    return f"变更 change #{found[0].id}: {found[0].state} (运维中心 /hisops/changes/{found[0].id})"


def tuning_runs(tok: str) -> dict[str, str]:
    """The pharmacy's slow lookups, a performance_review, the proposal approved (as the demo's
    sysadmin, audited), then a db_maintenance run triggered by admin that waits for a sysadmin in
    the UI."""
    from hisops.catalog.repository import CatalogRepository
    from hisops.devenv.tuning_plant import run_workload
    from hisops.tune.proposals import decide

    states: dict[str, str] = {}
    if not (_dag_exists(tok, "performance_review") and _dag_exists(tok, "db_maintenance")):
        return states
    pg = cluster()
    mean = run_workload(pg.dsn(TUNING_DB))
    say(f"慢查询负载 slow lookups played: mean {mean:.1f} ms")
    states["performance_review"] = trigger_and_wait(
        tok, "performance_review", timeout=900, conf={"databases": [TUNING_DB]}
    )
    repo = CatalogRepository.from_url(pg.sqlalchemy_url("hisops_catalog"))
    try:
        for p in repo.proposals(TUNING_DB, states=("proposed",)):
            if p.kind == "create_index":
                decide(repo, p.id, True, "sysadmin", "demo: approved by the demo script")
    finally:
        repo.dispose()
    _api("PATCH", "/api/v2/dags/db_maintenance", tok, {"is_paused": False})
    code, body = _api(
        "POST",
        "/api/v2/dags/db_maintenance/dagRuns",
        tok,
        {
            "logical_date": None,
            "conf": {"database_id": TUNING_DB, "dry_run": "no", "kinds": ["create_index"]},
        },
    )
    states["db_maintenance"] = (
        "awaiting approval: log in as sysadmin → 需要操作 Required actions "
        f"({body.get('dag_run_id')})"
        if code in (200, 201)
        else f"not triggered: {code}"
    )
    return states


def _banner(
    creds: dict[str, str], state: str, others: dict[str, str], errors: list[dict], seconds: float
) -> None:
    print("\n" + "=" * 72)
    print(f"hisops 演示已启动 demo is up in {seconds:.0f}s — http://localhost:{API_PORT}")
    print(f"自检 hisops_selfcheck: {state};  导入错误 DAG import errors: {len(errors)}")
    for dag_id, dag_state in others.items():
        print(f"  {dag_id}: {dag_state}")
    print(
        f"运维中心 O&M centre: http://localhost:{API_PORT}/hisops/  "
        "(报告、备份证据 reports, backup evidence)"
    )
    for e in errors:
        print(f"  ! {e.get('filename')}: {e.get('stack_trace', '')[-300:]}")
    print("登录 logins (user / password / role):")
    for user, role in USERS:
        print(f"  {user:9s} {creds[user]:14s} {role}")
    print(f"邮件 mails to supervisors land in {DEMO / 'mail' / 'new'} (Maildir)")
    print(
        "停止 stop: ./demo.sh down    清除 clean: ./demo.sh clean    状态 status: ./demo.sh status"
    )
    print("=" * 72)


def down() -> int:
    for name in SERVICES:
        if _alive(name):
            pid = int(_pidfile(name).read_text())
            os.killpg(pid, signal.SIGTERM)
            for _ in range(50):
                if not _alive(name):
                    break
                time.sleep(0.2)
            else:
                os.killpg(pid, signal.SIGKILL)
            say(f"stopped {name}")
        _pidfile(name).unlink(missing_ok=True)
    cluster().stop()
    say("stopped PostgreSQL")
    return 0


def clean() -> int:
    down()
    cluster().destroy()  # also the server folder outside the checkout (clone anywhere)
    shutil.rmtree(DEMO, ignore_errors=True)
    say("removed .demo/")
    return 0


def status() -> int:
    for name in SERVICES:
        print(f"{name:14s} {'running' if _alive(name) else 'stopped'}")
    print(
        f"{'postgresql':14s} {'running' if cluster().running() else 'stopped'} "
        f"(127.0.0.1:{PG_PORT})"
    )
    print(f"UI: http://localhost:{API_PORT}")
    return 0
