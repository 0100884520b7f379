"""Benchmark: host file cleanup over a nested tree (10k and 100k files), locally and over SSH.

Each measurement runs in a fresh child process so its peak RSS is its own: build the tree (half
of the files 30 days old), run the hisops rule (`<root>/**/*.log`, older than 7 days) — dry run
(list + decide) and real run (delete, recorded in a real catalog in batched inserts) — through
the local runner and through the loopback sshd, side by side with the plain baseline
`find <root> -type f -name '*.log' -mmin +10080 -delete` and a naive Python cleanup that holds the
full listing in memory (os.walk → list, then unlink), to show what "flat memory" means.

    .venv/bin/python bench/cleanup_hostfiles.py [--sizes 10000,100000] [--keep]

Everything lives in bench/out/cleanup-bench/ (private PostgreSQL and sshd on free ports) and is
removed afterwards unless --keep. Prints a Markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "cleanup-bench"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DAY = 86400


# (mode, dry run); dry runs share one tree, a real run ends it. At 100k files the tree takes minutes
# to
# build on a loaded machine, so the large plan builds it once: the listings first, one real run
# last.
PLAN_SMALL = (
    ("find-baseline", True),
    ("hisops-local", True),
    ("hisops-ssh", True),
    ("find-baseline", False),
    ("naive-python", False),
    ("hisops-local", False),
    ("hisops-ssh", False),
)
PLAN_LARGE = (
    ("find-baseline", True),
    ("hisops-local", True),
    ("hisops-ssh", True),
    ("hisops-local", False),
)


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def build_tree(root: Path, n: int) -> None:
    """n files in 10 × 10 × k directories; every second file 30 days old."""
    shutil.rmtree(root, ignore_errors=True)
    leaves = [
        root / f"a{i}" / f"b{j}" / f"c{k}"
        for i in range(10)
        for j in range(10)
        for k in range(max(1, n // 10000))
    ]
    per = n // len(leaves)
    old = time.time() - 30 * DAY
    count = 0
    for leaf in leaves:
        leaf.mkdir(parents=True, exist_ok=True)
        for f in range(per):
            p = leaf / f"app-{f:04d}.log"
            p.write_bytes(b"x" * 64)
            if count % 2 == 0:
                os.utime(p, (old, old))
            count += 1


def _inventory(root: Path):
    from hisops.inventory.loader import load_inventory

    text = f"""version: 1
hospital: bench
maintenance_window: {{start: "01:00", end: "05:00"}}
backup_storage: {{path: {OUT}/backups}}
reports: {{path: {OUT}/reports}}
systems:
  - id: s
    name: 测试
    name_en: bench
    hosts:
      - id: h
        local: true
        cleanup: [{{name: logs, paths: ["{root}/**/*.log"], older_than_days: 7}}]
"""
    path = OUT / "inventory.yaml"
    path.write_text(text)
    return load_inventory(path)


def child(mode: str, n: int, dry_run: bool, catalog_url: str, ssh_port: int) -> dict:
    """One measurement (runs in its own process). Dry runs leave the tree for the next row."""
    root = OUT / f"tree-{n}"
    if not (root / ".complete").exists():
        build_tree(root, n)
        (root / ".complete").touch()
    from hisops.catalog.repository import CatalogRepository
    from hisops.cleanup.service import clean_host_files
    from hisops.targets.runner import LocalRunner, SshParams, SshRunner

    inv = _inventory(root)
    repo = CatalogRepository.from_url(catalog_url)
    base = rss_kb()
    t0 = time.monotonic()
    if mode == "find-baseline":
        args = ["-print"] if dry_run else ["-delete"]
        subprocess.run(
            ["find", str(root), "-type", "f", "-name", "*.log", "-mmin", "+10080", *args],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        result = {}
    elif mode == "naive-python":
        listing = [(Path(d) / f, (Path(d) / f).stat()) for d, _, fs in os.walk(root) for f in fs]
        cut = time.time() - 7 * DAY
        for p, st in listing:
            if p.suffix == ".log" and st.st_mtime < cut:
                p.unlink()
        result = {"listed": len(listing)}
    else:

        def runner(host):
            if mode == "hisops-ssh":
                from hisops.devenv.sshd import LoopbackSshd

                s = LoopbackSshd(OUT / "sshd", ssh_port)
                return SshRunner(
                    host.id,
                    SshParams(
                        host=s.host, port=s.port, username=s.user, key_file=str(s.client_key)
                    ),
                )
            return LocalRunner(host.id)

        run_id = repo.start_cleanup_run("bench", f"{mode}-{n}-{dry_run}-{time.time()}", dry_run)
        steps = clean_host_files(repo, inv, run_id, dry_run=dry_run, runner_for=runner, echo=None)
        result = {"files": steps[0].files, "state": steps[0].state, "skipped": steps[0].skipped}
    seconds = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    left = sum(1 for _ in root.rglob("*.log"))
    if not dry_run:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "mode": mode,
        "n": n,
        "dry_run": dry_run,
        "seconds": round(seconds, 2),
        "base_rss_mb": round(base / 1024, 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "growth_mb": round((peak - base) / 1024, 1),
        "left": left,
        **result,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--child", nargs=5, metavar=("MODE", "N", "DRY", "URL", "SSH_PORT"))
    args = p.parse_args()
    if args.child:
        mode, n, dry, url, port = args.child
        print(json.dumps(child(mode, int(n), dry == "1", url, int(port))))
        return 0

    from hisops.catalog.migrate import upgrade
    from hisops.devenv.pgcluster import PgCluster
    from hisops.devenv.sshd import LoopbackSshd

    OUT.mkdir(parents=True, exist_ok=True)
    ssh_port = free_port()
    cluster, sshd = PgCluster(OUT / "pg", free_port()), LoopbackSshd(OUT / "sshd", ssh_port)
    cluster.start()
    sshd.start()
    cluster.create_database("bench_catalog")
    url = cluster.sqlalchemy_url("bench_catalog")
    upgrade(url)
    rows = []
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            plan = PLAN_SMALL if n <= 10_000 else PLAN_LARGE
            for mode, dry in plan:
                load = os.getloadavg()[0]
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        mode,
                        str(n),
                        "1" if dry else "0",
                        url,
                        str(ssh_port),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                row = json.loads(out.stdout.strip().splitlines()[-1]) | {"load": round(load, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        (OUT / "results.json").write_text(json.dumps(rows, indent=1))
        if not args.keep:
            sshd.stop()
            cluster.destroy()
    print(
        "\n| files | run | dry run | seconds | peak RSS MB | growth MB | files acted | left | load "
        "|"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']} | {r['mode']} | {'yes' if r['dry_run'] else 'no'} | {r['seconds']} | "
            f"{r['peak_rss_mb']} | "
            f"{r['growth_mb']} | {r.get('files', '—')} | {r['left']} | {r['load']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
