"""Physical tier benchmark (issue 8): pgBackRest through hisops vs raw, PITR drill, RPO, memory.

    .venv/bin/python bench/pitr.py                 # scale 22 (≈ 2.1 GB), 3 rounds, 3 RPO rounds
    .venv/bin/python bench/pitr.py --small         # quick check (< 2 min): scale 0.2, 1 round

Builds its own archiving PostgreSQL 15 cluster (port 55641, under ``bench/out/pitr/``, git-ignored)
with ``archive_command = pgbackrest … archive-push`` (archive_timeout 60 s), an inventory with a
``servers[].pitr`` block (lz4, process-max 2, the hisops-written config), a synthetic hospital
database (``hisops.synth``, seed 8) and a catalog database. Then, side by side in one run, with
interleaved repetitions (the order alternates A B / B A every round):

1. full backup: ``pitr_backup``'s task bodies (``prepare_task`` once, then ``backup_task`` with type
   full: stanza lock, ``pgbackrest info`` before/after, catalog rows, audit, asset event, catalog
   sync) in a fresh Python process vs raw ``pgbackrest --type=full backup`` (same config file);
2. incremental: ~1 % of the rows changed (the newest 1 % by primary key of every table: new row
   versions), then ``backup_task`` with type incr; ratio to the full of the same round;
3. PITR drill: ``backup_verification``'s ``run_drill_task`` (markers + named restore point,
   ``pgbackrest restore`` into a scratch directory, recovery, proof, GX suite, amcheck,
   ``pgbackrest verify``, teardown) vs raw ``pgbackrest restore --type=name`` + ``pg_ctl start``
   until promoted (to a restore point made just before, same set, same start options);
4. RPO: pgbench (loopback TCP, 4 clients) writes a counter row per transaction; the postmaster and
   every process of the server are SIGKILLed; ``pgbackrest restore`` (latest) into a new directory,
   recovery; committed transactions (pgbench's per-transaction log) minus rows recovered = lost.

Every hisops task and raw command runs as its own process tree; its peak RSS (tree summed, every
50 ms, psutil) is recorded. The scratch PostgreSQL servers started by ``pg_ctl`` are daemons (not in
the tree) in both contenders. Results: ``bench/out/pitr/results.json`` and Markdown on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from statistics import median
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "pitr"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DB, CATALOG, RPO_DB = "his_bench", "bench_catalog", "rpo_bench"
SERVER, STANZA, SEED = "bench-pg", "bench", 8


# --- measuring --------------------------------------------------------------------------------


class TreeSampler:
    """Peak summed RSS of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        import psutil

        self.root, self.every, self.peak, self.peak_no_server = psutil.Process(pid), every, 0, 0
        self.parts: dict[str, float] = {}  # MB per process name at the peak (server excluded)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = server = 0
            parts: dict[str, float] = {}
            for p in procs:
                try:
                    rss, name = p.memory_info().rss, p.name()
                except psutil.NoSuchProcess:
                    continue
                total += rss
                server += rss if name == "postgres" else 0
                parts[name] = round(parts.get(name, 0) + rss / 2**20, 1)
            self.peak = max(self.peak, total)
            if total - server > self.peak_no_server:
                self.peak_no_server = total - server
                self.parts = {k: v for k, v in parts.items() if k != "postgres"}
            self._stop.wait(self.every)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run_tree(argv: list[str], env: dict[str, str], what: str) -> dict[str, Any]:
    """Run a command to its end: wall seconds, peak tree RSS (MB), stdout; raises on failure."""
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate()
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {err.decode()[-3000:]}")
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(sampler.peak_no_server / 2**20, 1),
        "peak_rss_mb_with_server": round(sampler.peak / 2**20, 1),
        "peak_parts_mb": sampler.parts,
        "stdout": out.decode(),
        "load_1min_before": round(os.getloadavg()[0], 2),
    }


def cpu_busy() -> float:
    """Machine-wide busy CPU seconds so far (all cores, servers included): deltas around a
    contender say how much work it did, whatever the wall clock."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


# --- the cluster, inventory and connections ---------------------------------------------------


class Bench:
    def __init__(self, port: int, scale: float) -> None:
        from hisops.devenv.pgcluster import PgCluster

        self.scale = scale
        self.conf = OUT / "conf" / "pgbackrest.conf"
        self.repo = OUT / "repo"
        self.scratch = OUT / "scratch"
        archive = (
            "wal_level = replica\narchive_mode = on\narchive_timeout = 60\n"
            f"archive_command = 'pgbackrest --config={self.conf} --stanza={STANZA} "
            "archive-push %p'\nmax_wal_size = 4GB\n"
        )
        self.pg = PgCluster(OUT / "pg", port, socket=True, extra_conf=archive)

    # connections as Airflow gives them to a task (AIRFLOW_CONN_* JSON)
    def conn_json(self, db: str) -> str:
        pg = self.pg
        return json.dumps(
            {
                "conn_type": "postgres",
                "host": pg.host,
                "port": pg.port,
                "login": pg.user,
                "password": pg.password,
                "schema": db,
            }
        )

    def inventory(self) -> Path:
        pg = self.pg
        inv = OUT / "inventory.yaml"
        inv.write_text(
            textwrap.dedent(f"""\
            version: 1
            hospital: 基准测试医院 (benchmark)
            maintenance_window: {{start: "01:00", end: "05:00"}}
            backup_storage: {{path: {OUT}/logical}}
            reports: {{path: {OUT}/reports}}
            systems:
              - id: bench
                name: 基准 Benchmark
                name_en: Benchmark
                databases:
                  - id: his_bench
                    conn_id: bench_db
                    server: {SERVER}
                    critical_tables: [patient, outpatient_visit, prescription]
                servers:
                  - id: {SERVER}
                    conn_id: bench_pg
                    data_directory: {pg.datadir}
                    port: {pg.port}
                    pitr:
                      stanza: {STANZA}
                      repo: {{path: {self.repo}}}
                      config_path: {self.conf}
                      socket_dir: {pg.socket_dir}
                      os_user: {pg.os_user}
                      retention: {{full: 2}}
                      rpo_seconds: 60
                      compress_type: lz4
                      process_max: 2
                      scratch_path: {self.scratch}
            """)
        )
        return inv

    def child_env(self, include: Path | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "HISOPS_INVENTORY": str(self.inventory()),
            "AIRFLOW_CONN_BENCH_DB": self.conn_json(DB),
            "AIRFLOW_CONN_BENCH_PG": self.conn_json("postgres"),
            "AIRFLOW_CONN_HISOPS_CATALOG": self.conn_json(CATALOG),
            "PYTHONPATH": f"{include or REPO / 'include'}:{os.environ.get('PYTHONPATH', '')}",
        }

    def raw_env(self) -> dict[str, str]:
        """What the hisops PgBackRest passes: the server password in the environment only."""
        return {**os.environ, "PGPASSWORD": self.pg.password, "PGAPPNAME": "bench-raw"}

    def pgbackrest(self, command: str, *options: str) -> list[str]:
        return as_postgres(
            ["pgbackrest", f"--config={self.conf}", f"--stanza={STANZA}", *options, command]
        )

    def query(self, sql: str, db: str = DB, dsn: str | None = None) -> Any:
        import psycopg2

        conn = psycopg2.connect(dsn or self.pg.dsn(db))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()


def setup(bench: Bench) -> int:
    from hisops.catalog.migrate import upgrade
    from hisops.synth.generate import generate

    OUT.mkdir(parents=True, exist_ok=True)
    os.chmod(OUT, 0o755)
    pg = bench.pg
    pg.start()
    marker = OUT / "scale.txt"
    if pg.database_exists(DB) and (not marker.exists() or float(marker.read_text()) != bench.scale):
        pg.execute(f"DROP DATABASE {DB} WITH (FORCE)")
    if not pg.database_exists(DB):
        pg.create_database(DB)
        generate(pg.dsn(DB), bench.scale, seed=SEED, log=lambda m: print(m, flush=True))
        pg.execute("VACUUM ANALYZE", DB)
        marker.write_text(str(bench.scale))
    if pg.create_database(CATALOG):
        upgrade(pg.sqlalchemy_url(CATALOG))
    pg.execute("CHECKPOINT")
    return bench.query("SELECT pg_database_size(current_database())")[0][0]


# --- hisops task bodies in a fresh process ------------------------------------------------------

# The child imports what an Airflow worker has imported when a task body starts, then times the
# task body itself. Airflow-only glue is replaced: ``set_label`` (the UI label of a mapped task,
# needs a running task's context) and the outlet-events accessor (records the asset event here).
CHILD = r"""
import json, logging, sys, time
from datetime import UTC, datetime
from types import SimpleNamespace
logging.basicConfig(level=logging.WARNING)
import psycopg2, sqlalchemy, airflow.sdk
import hisops.airflow.backup_tasks as bt, hisops.airflow.pitr_tasks as pt
import hisops.airflow.verify_tasks as vt
bt.set_label = pt.set_label = vt.set_label = lambda context, label: None

class Events(dict):
    def __missing__(self, key):
        self[key] = SimpleNamespace(events=[], add=lambda asset, extra=None: None)
        return self[key]

def context(run_id):
    run = SimpleNamespace(dag_id=sys.argv[2], run_id=run_id, run_type="manual",
                          logical_date=datetime.now(UTC), run_after=datetime.now(UTC),
                          triggering_user_name="bench")
    return {"dag_run": run, "run_id": run_id, "outlet_events": Events()}

job = json.loads(sys.argv[3])
import psutil
def busy():  # machine-wide busy CPU seconds (bench/pitr.py cpu_busy)
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)
busy_before = busy()
start = time.monotonic()
if sys.argv[1] == "prepare":
    result = pt.prepare_task(job["server_id"], context(job["run_id"]))
elif sys.argv[1] == "backup":
    ctx = context(job["run_id"])
    result = pt.backup_task(job["prepared"], job["type"], ctx)
elif sys.argv[1] == "drill":
    result = vt.run_drill_task(job, context(job["run_id"]))
result = {"task_seconds": time.monotonic() - start, "cpu_busy_s": busy() - busy_before, **result}
print("RESULT " + json.dumps(result, default=str))
"""


def hisops_task(
    bench: Bench, kind: str, dag_id: str, job: dict[str, Any], include: Path | None = None
) -> dict[str, Any]:
    r = run_tree(
        [sys.executable, "-c", CHILD, kind, dag_id, json.dumps(job)],
        bench.child_env(include),
        f"hisops {kind}",
    )
    line = next(ln for ln in reversed(r["stdout"].splitlines()) if ln.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    return {
        "seconds": round(result["task_seconds"], 2),
        "cpu_busy_s": round(result["cpu_busy_s"], 2),
        "process_wall_seconds": r["seconds"],
        "peak_rss_mb": r["peak_rss_mb"],
        "peak_rss_mb_with_server": r["peak_rss_mb_with_server"],
        "peak_parts_mb": r["peak_parts_mb"],
        "load_1min_before": r["load_1min_before"],
        "result": result,
    }


# --- 1 + 2: full and incremental backups --------------------------------------------------------


def raw_backup(bench: Bench, kind: str) -> dict[str, Any]:
    r = run_tree(bench.pgbackrest("backup", f"--type={kind}"), bench.raw_env(), "pgbackrest")
    info = run_tree(bench.pgbackrest("info", "--output=json"), bench.raw_env(), "info")
    last = json.loads(info["stdout"])[0]["backup"][-1]
    r.pop("stdout")
    return {
        **r,
        "label": last["label"],
        "repo_mb": round(last["info"]["repository"]["delta"] / 1e6),
    }


def hisops_backup(bench: Bench, prepared: dict, kind: str, i: int) -> dict[str, Any]:
    job = {"prepared": prepared, "type": kind, "run_id": f"bench__{kind}_{i}_{time.time():.0f}"}
    r = hisops_task(bench, "backup", "pitr_backup", job)
    res = r.pop("result")
    return {
        **r,
        "label": res["label"],
        "backup_id": res["backup_id"],
        "repo_mb": round(res["repo_bytes"] / 1e6),
    }


def change_one_percent(bench: Bench) -> dict[str, Any]:
    """New row versions for the newest 1 % (by primary key) of every table with a one-column key."""
    rows = bench.query(
        """SELECT c.relname, a.attname, c.reltuples::bigint
             FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE i.indisprimary AND i.indnatts = 1 AND n.nspname = 'public'"""
    )
    start, changed = time.monotonic(), 0
    for table, key, _est in rows:
        (total,) = bench.query(f'SELECT count(*) FROM "{table}"')[0]
        n = max(1, total // 100)
        got = bench.query(
            f'WITH c AS (UPDATE "{table}" SET "{key}" = "{key}" WHERE "{key}" IN '
            f'(SELECT "{key}" FROM "{table}" ORDER BY "{key}" DESC LIMIT {n}) RETURNING 1) '
            "SELECT count(*) FROM c"
        )
        changed += got[0][0]
    (total_rows,) = bench.query(
        "SELECT sum(n_live_tup)::bigint FROM pg_stat_user_tables WHERE schemaname = 'public'"
    )[0]
    return {
        "rows_changed": changed,
        "rows_total_est": int(total_rows or 0),
        "seconds": round(time.monotonic() - start, 1),
    }


# --- 3: PITR drill vs raw restore + recovery ----------------------------------------------------


def hisops_drill(
    bench: Bench, backup_id: int, label: str, i: int, include: Path | None = None
) -> dict[str, Any]:
    job = {
        "backup_id": backup_id,
        "database_id": SERVER,
        "label": label,
        "kind": "physical",
        "pitr_target": "auto",
        "mode": "fast",
        "system_id": "bench",
        "run_id": f"bench__drill_{i}_{time.time():.0f}",
    }
    r = hisops_task(bench, "drill", "backup_verification", job, include)
    res = r.pop("result")
    if not res["ok"]:
        raise RuntimeError(f"hisops drill failed: {res['failures']}")
    t = res.get("timings", {})
    return {
        **r,
        "restore_recovery_seconds": res["restore_seconds"],
        "checks_total": res["checks_total"],
        "timings": t,
    }


def wait_archived(bench: Bench, timeout: float = 120) -> None:
    (segment,) = bench.query("SELECT pg_walfile_name(pg_switch_wal())", "postgres")[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (archived,) = bench.query("SELECT last_archived_wal FROM pg_stat_archiver", "postgres")[0]
        if archived and archived[:24] >= segment:
            return
        time.sleep(0.3)
    raise RuntimeError(f"segment {segment} not archived in {timeout}s")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scratch_dir(bench: Bench, name: str) -> Path:
    bench.scratch.mkdir(mode=0o700, exist_ok=True)
    path = bench.scratch / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    if os.geteuid() == 0:
        shutil.chown(bench.scratch, "postgres", "postgres")
        shutil.chown(path, "postgres", "postgres")
    return path


def start_and_wait_promoted(bench: Bench, data: Path, port: int) -> None:
    """pg_ctl start with the drill's options, then poll until the copy accepts writes."""
    import psycopg2

    opts = (
        f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
        "-c archive_mode=off -c shared_buffers=128MB -c hot_standby=on"
    )
    argv = [
        str(PG_BIN / "pg_ctl"),
        "start",
        "-D",
        str(data),
        "-l",
        str(data / "recovery.log"),
        "-w",
        "-t",
        "3600",
        "-o",
        opts,
    ]
    subprocess.run(as_postgres(argv), check=True, capture_output=True)
    pg = bench.pg
    dsn = f"host=127.0.0.1 port={port} user={pg.user} password={pg.password} dbname=postgres"
    while True:
        try:
            conn = psycopg2.connect(dsn, connect_timeout=3)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_is_in_recovery()")
                    if not cur.fetchone()[0]:
                        return
            finally:
                conn.close()
        except psycopg2.OperationalError:
            pass
        time.sleep(0.2)  # as the drill polls (pitr.drill.PROMOTED_POLL_S)


def stop_remove(data: Path) -> None:
    if (data / "postmaster.pid").exists():
        subprocess.run(
            as_postgres([str(PG_BIN / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w"]),
            capture_output=True,
        )
    shutil.rmtree(data, ignore_errors=True)


def raw_drill(bench: Bench, label: str, i: int) -> dict[str, Any]:
    point = f"bench_raw_{i}_{int(time.time())}"
    bench.query(f"SELECT pg_create_restore_point('{point}')", "postgres")
    wait_archived(bench)
    data, port = scratch_dir(bench, f"raw_{i}"), free_port()
    start, busy = time.monotonic(), cpu_busy()
    r = run_tree(
        bench.pgbackrest(
            "restore",
            f"--set={label}",
            f"--pg1-path={data}",
            "--archive-mode=off",
            "--type=name",
            f"--target={point}",
            "--target-action=promote",
        ),
        bench.raw_env(),
        "pgbackrest restore",
    )
    restore_s = time.monotonic() - start
    start_and_wait_promoted(bench, data, port)
    seconds, busy = time.monotonic() - start, cpu_busy() - busy
    t0 = time.monotonic()
    stop_remove(data)
    return {
        "seconds": round(seconds, 2),
        "cpu_busy_s": round(busy, 2),
        "restore_seconds": round(restore_s, 2),
        "recovery_seconds": round(seconds - restore_s, 2),
        "teardown_seconds": round(time.monotonic() - t0, 2),
        "peak_rss_mb": r["peak_rss_mb"],
        "load_1min_before": r["load_1min_before"],
    }


# --- 4: RPO under pgbench after SIGKILL ---------------------------------------------------------

PGBENCH_SCRIPT = """\\set aid random(1, 100000 * 5)
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
INSERT INTO rpo_tick (client) VALUES (:client_id);
END;
"""


def rpo_prepare(bench: Bench) -> None:
    pg = bench.pg
    if pg.create_database(RPO_DB):
        env = {**os.environ, "PGPASSWORD": pg.password}
        subprocess.run(
            [
                "pgbench",
                "-i",
                "-s",
                "5",
                "-q",
                "-h",
                pg.host,
                "-p",
                str(pg.port),
                "-U",
                pg.user,
                RPO_DB,
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        bench.query(
            "CREATE TABLE rpo_tick (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "client int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())",
            RPO_DB,
        )
    (OUT / "rpo").mkdir(exist_ok=True)
    (OUT / "rpo" / "tick.sql").write_text(PGBENCH_SCRIPT)


def kill_server(bench: Bench) -> int:
    """SIGKILL the postmaster and every process of the server (as a power cut leaves them)."""
    import psutil

    pid = int((bench.pg.datadir / "postmaster.pid").read_text().splitlines()[0])
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)
    return len(procs)


def rpo_round(bench: Bench, i: int, load_seconds: float) -> dict[str, Any]:
    import psycopg2

    pg = bench.pg
    logdir = OUT / "rpo" / f"round-{i}"
    shutil.rmtree(logdir, ignore_errors=True)
    logdir.mkdir(parents=True)
    (before,) = bench.query("SELECT count(*) FROM rpo_tick", RPO_DB)[0]
    env = {**os.environ, "PGPASSWORD": pg.password}
    argv = [
        "pgbench",
        "-n",
        "-c",
        "4",
        "-j",
        "2",
        "-T",
        str(int(load_seconds) + 600),
        "-l",
        f"--log-prefix={logdir}/tx",
        "-f",
        str(OUT / "rpo" / "tick.sql"),
        "-h",
        "127.0.0.1",
        "-p",
        str(pg.port),
        "-U",
        pg.user,
        RPO_DB,
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(load_seconds)
    archiver = bench.query(
        "SELECT last_archived_wal, last_archived_time, pg_walfile_name(pg_current_wal_lsn()) "
        "FROM pg_stat_archiver",
        "postgres",
    )[0]
    killed_at = time.time()
    n = kill_server(bench)
    out, err = proc.communicate(timeout=120)
    acked = sum(  # a committed transaction's line has its latency (µs) in the third field
        1
        for p in logdir.glob("tx*")
        for line in p.read_text().splitlines()
        if len(line.split()) > 2 and line.split()[2].isdigit()
    )
    m = re.search(r"number of transactions actually processed: (\d+)", out.decode())
    data, port = scratch_dir(bench, f"rpo_{i}"), free_port()
    start = time.monotonic()
    r = run_tree(
        bench.pgbackrest("restore", f"--pg1-path={data}", "--archive-mode=off", "--type=default"),
        bench.raw_env(),
        "pgbackrest restore (latest)",
    )
    start_and_wait_promoted(bench, data, port)
    recover_s = time.monotonic() - start
    dsn = f"host=127.0.0.1 port={port} user={pg.user} password={pg.password} dbname={RPO_DB}"
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), extract(epoch FROM max(at)) FROM rpo_tick")
        total, last_at = cur.fetchone()
    conn.close()
    stop_remove(data)
    pg.start()  # crash recovery of the original from its own pg_wal, for the next round
    recovered = total - before
    tps = acked / load_seconds
    lost = max(0, acked - recovered)
    return {
        "round": i,
        "load_seconds": load_seconds,
        "processes_killed": n,
        "committed_acknowledged": acked,
        "pgbench_reported": int(m.group(1)) if m else None,
        "recovered": recovered,
        "lost_transactions": lost,
        "tps": round(tps, 1),
        "lost_seconds_of_work": round(lost / tps, 1) if tps else None,
        # None: no commit of this round recovered (all of it in the segment not yet archived)
        "last_recovered_commit_before_kill_s": (
            round(killed_at - float(last_at), 1) if last_at and recovered else None
        ),
        "archiver_at_kill": {
            "last_archived": archiver[0],
            "current": archiver[2],
            "last_archived_age_s": round(killed_at - archiver[1].timestamp(), 1)
            if archiver[1]
            else None,
        },
        "restore_recovery_seconds": round(recover_s, 1),
        "restore_peak_rss_mb": r["peak_rss_mb"],
        "load_1min_before": r["load_1min_before"],
    }


# --- the run ------------------------------------------------------------------------------------


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def backup_rounds(
    bench: Bench, prepared: dict, rounds: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    full: list[dict[str, Any]] = []
    incr: list[dict[str, Any]] = []
    for i in range(rounds):
        order = ["hisops", "raw"] if i % 2 == 0 else ["raw", "hisops"]
        got = {}
        for who in order:
            got[who] = (
                hisops_backup(bench, prepared, "full", i)
                if who == "hisops"
                else raw_backup(bench, "full")
            )
        got["order"] = " ".join(order)
        got["ratio_raw_over_hisops"] = ratio(got["raw"]["seconds"], got["hisops"]["seconds"])
        full.append(got)
        print("full", i + 1, json.dumps(got), flush=True)
        change = change_one_percent(bench)
        inc = hisops_backup(bench, prepared, "incr", i)
        incr.append(
            {
                "change": change,
                "hisops_incr": inc,
                "hisops_full": got["hisops"],
                "ratio_incr_over_full": ratio(inc["seconds"], got["hisops"]["seconds"]),
            }
        )
        print("incr", i + 1, json.dumps(incr[-1]), flush=True)
    return full, incr


def drill_rounds(bench: Bench, last_full: dict, args: argparse.Namespace) -> list[dict]:
    """hisops drill vs raw restore + recovery (and the baseline code's drill, if given),
    the order rotating every round."""
    drills = []
    who_all = ["hisops", "raw"] + (["baseline"] if args.baseline_include else [])
    for i in range(args.rounds):
        order = who_all if i % 2 == 0 else who_all[::-1]
        got: dict[str, Any] = {}
        for who in order:
            if who == "raw":
                got[who] = raw_drill(bench, last_full["label"], i)
            else:
                include = args.baseline_include if who == "baseline" else None
                got[who] = hisops_drill(
                    bench, last_full["backup_id"], last_full["label"], i, include
                )
        got["order"] = " ".join(order)
        got["ratio_hisops_over_raw"] = ratio(got["hisops"]["seconds"], got["raw"]["seconds"])
        got["ratio_rto_hisops_over_raw"] = ratio(
            got["hisops"]["restore_recovery_seconds"], got["raw"]["seconds"]
        )
        if "baseline" in got:
            got["ratio_baseline_over_raw"] = ratio(
                got["baseline"]["seconds"], got["raw"]["seconds"]
            )
        drills.append(got)
        print("drill", i + 1, json.dumps(got), flush=True)
    return drills


def run(args: argparse.Namespace) -> dict[str, Any]:
    bench = Bench(args.port, args.scale)
    t0 = time.monotonic()
    size = setup(bench)
    print(f"database ready: {size / 1e9:.2f} GB ({time.monotonic() - t0:.0f}s)", flush=True)
    res: dict[str, Any] = {"size_bytes": size, "scale": args.scale, "rounds": args.rounds}
    prep = hisops_task(bench, "prepare", "pitr_backup", {"server_id": SERVER, "run_id": "bench_p"})
    prepared = prep.pop("result")
    prepared.pop("task_seconds")
    prepared.pop("cpu_busy_s")
    res["prepare"] = prep
    print("prepare (config, stanza-create, check):", json.dumps(prep), flush=True)
    wait_archived(bench)
    # warm-up: two fulls, so the cache is warm and every measured full expires one (retention 2)
    for _ in range(1 if args.small or args.only == "drill" else 2):
        run_tree(bench.pgbackrest("backup", "--type=full"), bench.raw_env(), "warm-up backup")

    if args.only == "drill":  # one full for the catalog row the drills verify
        res["full"], res["incr"], res["rpo"] = [], [], []
        last_full = hisops_backup(bench, prepared, "full", 0)
    else:
        full, incr = backup_rounds(bench, prepared, args.rounds)
        res["full"], res["incr"] = full, incr
        last_full = full[-1]["hisops"]
    res["drill"] = drill_rounds(bench, last_full, args)
    if args.only == "drill":
        return res
    rpo_prepare(bench)
    wait_archived(bench)  # the pgbench tables are in the archive before the load starts
    res["rpo"] = []
    for i in range(args.rpo_rounds):
        res["rpo"].append(rpo_round(bench, i + 1, args.load_seconds))
        print("rpo", i + 1, json.dumps(res["rpo"][-1], default=str), flush=True)
    return res


def summary(res: dict[str, Any]) -> str:
    def med(xs: list[float]) -> float:
        return round(median(xs), 3) if xs else float("nan")

    full, incr, drills = res["full"], res["incr"], res["drill"]
    lines = [f"database {res['size_bytes'] / 1e9:.2f} GB, scale {res['scale']}", ""]
    lines += [
        "| round | order | hisops full s | raw full s | raw/hisops | hisops RSS | raw RSS |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(full, 1):
        h, w = r["hisops"], r["raw"]
        lines.append(
            f"| {i} | {r['order']} | {h['seconds']} | {w['seconds']} | "
            f"{r['ratio_raw_over_hisops']} | {h['peak_rss_mb']} | {w['peak_rss_mb']} |"
        )
    lines.append(f"| median | | | | {med([r['ratio_raw_over_hisops'] for r in full])} | | |")
    lines += [
        "",
        "| round | rows changed | incr s | full s | incr/full | incr repo MB | "
        "full repo MB | incr RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(incr, 1):
        c, h, f = r["change"], r["hisops_incr"], r["hisops_full"]
        lines.append(
            f"| {i} | {c['rows_changed']:,} of {c['rows_total_est']:,} | {h['seconds']} | "
            f"{f['seconds']} | {r['ratio_incr_over_full']} | {h['repo_mb']} | "
            f"{f['repo_mb']} | {h['peak_rss_mb']} |"
        )
    lines.append(f"| median | | | | {med([r['ratio_incr_over_full'] for r in incr])} | | | |")
    lines += [
        "",
        "| round | order | hisops drill s | of which restore+recovery | raw restore+"
        "recovery s | hisops/raw | RTO hisops/raw | hisops RSS | raw RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(drills, 1):
        h, w = r["hisops"], r["raw"]
        lines.append(
            f"| {i} | {r['order']} | {h['seconds']} | {h['restore_recovery_seconds']} | "
            f"{w['seconds']} | {r['ratio_hisops_over_raw']} | "
            f"{r['ratio_rto_hisops_over_raw']} | {h['peak_rss_mb']} | {w['peak_rss_mb']} |"
        )
    lines.append(
        f"| median | | | | | {med([r['ratio_hisops_over_raw'] for r in drills])} | "
        f"{med([r['ratio_rto_hisops_over_raw'] for r in drills])} | | |"
    )
    for i, r in enumerate(drills, 1):
        if "baseline" in r:
            b = r["baseline"]
            lines.append(
                f"drill {i} baseline code: {b['seconds']} s (restore+recovery "
                f"{b['restore_recovery_seconds']}), baseline/raw {r['ratio_baseline_over_raw']}, "
                f"RSS {b['peak_rss_mb']} MB"
            )
        lines.append(
            f"drill {i} machine CPU busy s: hisops {r['hisops']['cpu_busy_s']}, "
            f"raw {r['raw']['cpu_busy_s']}"
            + (f", baseline {r['baseline']['cpu_busy_s']}" if "baseline" in r else "")
        )
        lines.append(f"drill {i} hisops timings: {json.dumps(r['hisops']['timings'])}")
        lines.append(f"drill {i} hisops peak parts MB: {json.dumps(r['hisops']['peak_parts_mb'])}")
    lines += [
        "",
        "| round | load s | TPS | committed | recovered | lost tx | lost s of work | "
        "last recovered commit before kill | archiver at kill |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in res["rpo"]:
        a = r["archiver_at_kill"]
        lines.append(
            f"| {r['round']} | {r['load_seconds']} | {r['tps']} | "
            f"{r['committed_acknowledged']:,} | {r['recovered']:,} | "
            f"{r['lost_transactions']:,} | {r['lost_seconds_of_work']} | "
            f"{r['last_recovered_commit_before_kill_s']} s | last archived "
            f"{a['last_archived']}, current {a['current']} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", type=float, default=22, help="synthetic scale (22 ≈ 2.1 GB)")
    ap.add_argument("--port", type=int, default=55641)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rpo-rounds", type=int, default=3)
    ap.add_argument("--load-seconds", type=float, default=75)
    ap.add_argument("--small", action="store_true", help="quick check: scale 0.2, one round each")
    ap.add_argument("--keep", action="store_true", help="keep cluster, data and repository")
    ap.add_argument(
        "--only", choices=("all", "drill"), default="all", help="drill: item 3 (and memory) only"
    )
    ap.add_argument(
        "--baseline-include",
        type=Path,
        help="also drill with this include/ (e.g. a worktree of the code before a change)",
    )
    args = ap.parse_args()
    if args.small:
        args.scale, args.rounds, args.rpo_rounds, args.load_seconds = 0.2, 1, 1, 5
    try:
        res = run(args)
        (OUT / ("results-small.json" if args.small else "results.json")).write_text(
            json.dumps(res, indent=2, ensure_ascii=False, default=str)
        )
        print(summary(res))
    finally:
        from hisops.devenv.pgcluster import PgCluster

        pg = PgCluster(OUT / "pg", args.port, socket=True)
        if args.keep:
            pg.stop()
        else:
            pg.destroy()
            for d in ("repo", "conf", "scratch", "rpo", "reports", "logical"):
                shutil.rmtree(OUT / d, ignore_errors=True)


if __name__ == "__main__":
    main()
