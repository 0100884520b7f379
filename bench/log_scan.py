"""Benchmark: log scan throughput and memory on a >= 1 GB generated log.

Compares, on the same file and the same three patterns (error, fatal, oom):
- hisops (`hisops.inspect.engine.inspect_host` → dd-seek | grep -b -E prefilter | awk count),
  locally through the LocalRunner and over the loopback sshd through the SshRunner;
- the alternative it replaced: a Python chunked regex scan (8 MB chunks, bytes regexes);
- a single awk program over every line (the "small awk program" approach without grep).
Warm = file in the page cache; cold = evicted first with posix_fadvise(DONTNEED) (no root needed).
Peak RSS: our Python process (ru_maxrss growth, tracemalloc peak) and the host-side command tree
(GNU time's %M, when /usr/bin/time exists).

    .venv/bin/python bench/log_scan.py [--size-mb 1100] [--dir /tmp/hisops-bench-inspect/logs]
    [--no-ssh]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from hisops.inspect.engine import inspect_host
from hisops.inventory.models import Host, LogSource, System
from hisops.inventory.thresholds import Thresholds
from hisops.targets.runner import LocalRunner, SshParams, SshRunner

PATTERNS = {"error": "ERROR", "fatal": "FATAL|PANIC", "oom": "(?i)out of memory"}
TEMPLATES = [
    "{ts} CST [{pid}] LOG:  duration: {d}.512 ms  statement: SELECT * FROM outpatient_visit WHERE "
    "visit_id = {n}",
    "{ts} CST [{pid}] LOG:  connection authorized: user=his_app database=his_outpatient "
    "application_name=his",
    "{ts} CST [{pid}] LOG:  checkpoint complete: wrote {n} buffers (0.1%); 0 WAL file(s) added, 0 "
    "removed",
    '{ts} CST [{pid}] LOG:  automatic vacuum of table "his.public.prescription": index scans: 1',
]
RARE = [
    (
        0.005,
        '{ts} CST [{pid}] ERROR:  duplicate key value violates unique constraint "patient_pkey" '
        "身份证 110101199003071234 电话 13812345678",
    ),
    (0.0005, '{ts} CST [{pid}] FATAL:  password authentication failed for user "his_app"'),
    (
        0.0001,
        "{ts} CST [{pid}] LOG:  server process (PID {pid}) was terminated by signal 9: Killed (Out "
        "of memory)",
    ),
]


def generate(path: Path, size: int, seed: int = 1) -> None:
    """A PostgreSQL-like log of ``size`` bytes: a random 8 MB block written repeatedly (fast)."""
    if path.exists() and path.stat().st_size >= size:
        return
    rnd = random.Random(seed)
    lines = []
    for _ in range(60_000):
        r = rnd.random()
        template = next((t for p, t in RARE if (r := r - p) < 0), None) or rnd.choice(TEMPLATES)
        lines.append(
            template.format(
                ts=f"2026-11-25 07:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}.123",
                pid=rnd.randrange(1000, 99999),
                d=rnd.randrange(1, 900),
                n=rnd.randrange(10**6),
            )
        )
    block = ("\n".join(lines) + "\n").encode()
    with path.open("wb") as fh:
        written = 0
        while written < size:
            fh.write(block)
            written += len(block)


def evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class Timed:
    """Wraps a runner: reports the peak RSS of each command's process tree (GNU time)."""

    def __init__(self, inner) -> None:
        self.inner, self.target, self.peak_kb, self.cpu_s = inner, inner.target, None, 0.0

    def run(self, command: str, timeout: float = 30):
        if not os.path.exists("/usr/bin/time"):
            return self.inner.run(command, timeout)
        res = self.inner.run(f"/usr/bin/time -f 'hisops-maxrss %M %U %S' {command}", timeout)
        for kb, user, system in re.findall(r"hisops-maxrss (\d+) ([\d.]+) ([\d.]+)", res.stderr):
            self.peak_kb = max(self.peak_kb or 0, int(kb))
            self.cpu_s += float(user) + float(system)
        return res

    def close(self) -> None:
        self.inner.close()


def hisops_scan(path: Path, runner, offsets=None) -> dict:
    host = Host(
        id="bench", local=True, disk_paths=[], logs=[LogSource(path=str(path), patterns=PATTERNS)]
    )
    system = System(id="bench", name="基准", name_en="bench", hosts=[host])
    timed = Timed(runner)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    findings, new = inspect_host(system, host, timed, Thresholds(), log_offsets=offsets)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    counts = {
        f.check_id: int(f.value)
        for f in findings
        if f.target_kind == "log" and f.check_id != "log.files"
    }
    return {
        "seconds": seconds,
        "counts": counts,
        "offsets": new,
        "commands_kb": timed.peak_kb,
        "cpu_s": timed.cpu_s,
        "py_peak_kb": peak // 1024,
        "py_growth_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base,
    }


PY_SCAN = r"""
import json, re, resource, sys, time
pats = {k: re.compile(v.encode(), re.M) for k, v in json.loads(sys.argv[2]).items()}
counts = dict.fromkeys(pats, 0)
carry, start = b"", time.perf_counter()
with open(sys.argv[1], "rb", buffering=0) as fh:
    while data := fh.read(8 << 20):
        cut = data.rfind(b"\n")
        if cut < 0:
            carry += data
            continue
        buf, carry = carry + data[:cut + 1], data[cut + 1:]
        for name, pat in pats.items():
            pos = 0
            while (m := pat.search(buf, pos)) is not None:
                counts[name] += 1
                pos = buf.find(b"\n", m.end()) + 1
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - start, "counts": counts,
                  "rss_kb": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


def python_scan(path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PY_SCAN, str(path), json.dumps(PATTERNS)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def awk_scan(path: Path) -> dict:
    prog = (
        "/ERROR/ { e++ } /FATAL|PANIC/ { f++ } /[oO][uU][tT] [oO][fF] [mM][eE][mM][oO][rR][yY]/ "
        "{ o++ } "
        "END { print e + 0, f + 0, o + 0 }"
    )
    start = time.perf_counter()
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", "awk", prog, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    e, f, o = out.stdout.split()
    kb, user, system = out.stderr.strip().splitlines()[-1].split()
    return {
        "seconds": time.perf_counter() - start,
        "counts": {"error": int(e), "fatal": int(f), "oom": int(o)},
        "rss_kb": int(kb),
        "cpu_s": float(user) + float(system),
    }


def rss(r: dict) -> str:
    return (
        f"commands {r['commands_kb'] or '?'} KB RSS, {r['cpu_s']:.2f} s CPU; python "
        f"+{r['py_growth_kb']} KB "
        f"(traced {r['py_peak_kb']} KB)"
    )


def line(label: str, size: int, r: dict, rss: str) -> None:
    print(f"  {label:<44} {r['seconds']:7.2f} s  {size / r['seconds'] / 1e6:8.0f} MB/s  {rss}")


def ssh_runner(folder: Path):
    from hisops.devenv.sshd import LoopbackSshd

    sshd = LoopbackSshd(folder / "sshd", 55602)
    sshd.start()
    runner = SshRunner(
        "bench",
        SshParams(
            host=sshd.host, port=sshd.port, username=sshd.user, key_file=str(sshd.client_key)
        ),
    )
    return sshd, runner


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-mb", type=int, default=1100)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/hisops-bench-inspect/logs"))
    ap.add_argument("--no-ssh", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the generated log")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / "bench-postgresql.log"
    generate(path, args.size_mb * 1024 * 1024)
    size = path.stat().st_size
    print(f"log: {path} {size / 1e6:.0f} MB; patterns {PATTERNS}; load {os.getloadavg()}")
    try:
        run_all(path, size, args)
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)


def run_all(path: Path, size: int, args) -> None:
    hisops_scan(path, LocalRunner())  # warm the page cache and the apt cache of the host script
    warm = hisops_scan(path, LocalRunner())
    evict(path)
    cold = hisops_scan(path, LocalRunner())
    print(f"counts: {warm['counts']}")
    line("hisops local, warm cache", size, warm, rss(warm))
    line("hisops local, cold cache", size, cold, rss(cold))
    py = python_scan(path)
    assert {f"log.{k}": v for k, v in py["counts"].items()} == warm["counts"], (
        py["counts"],
        warm["counts"],
    )
    line(
        "python chunked regex (8 MB chunks), warm",
        size,
        py,
        f"process {py['rss_kb']} KB RSS, {py['cpu_s']:.2f} s CPU",
    )
    awk = awk_scan(path)
    line(
        "single awk program, warm",
        size,
        awk,
        f"awk {awk['rss_kb']} KB RSS, {awk['cpu_s']:.2f} s CPU",
    )
    if not args.no_ssh:
        sshd, runner = ssh_runner(args.dir)
        try:
            remote = hisops_scan(path, runner)
            assert remote["counts"] == warm["counts"]
            line("hisops over loopback SSH, warm", size, remote, rss(remote))
        finally:
            runner.close()
            sshd.stop()
    with path.open("rb") as src:
        chunk = src.read(50 * 1024 * 1024).rsplit(b"\n", 1)[0] + b"\n"
    with path.open("ab") as fh:  # the next day: 50 MB more
        fh.write(chunk)
    more = hisops_scan(path, LocalRunner(), warm["offsets"])
    grown = path.stat().st_size - size
    print(
        f"  incremental: {grown / 1e6:.0f} MB appended → {more['seconds']:.2f} s, counts "
        f"{more['counts']}"
    )


if __name__ == "__main__":
    main()
