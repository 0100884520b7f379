"""Log scanning on real files: new bytes only, rotation, truncation, masking, memory, over SSH."""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hisops.inspect import log_scan
from hisops.inspect.engine import inspect_host
from hisops.inventory.models import LogSource
from hisops.inventory.thresholds import Thresholds
from hisops.targets.runner import LocalRunner, SshParams, SshRunner

from tests.inspect.conftest import host, system

REPO = Path(__file__).resolve().parents[2]


def scan(glob: str | Path, offsets=None, patterns=None, runner=None) -> tuple[dict, dict]:
    """Log findings by check id (for the one source) and the new offsets."""
    src = LogSource(path=str(glob), patterns=patterns) if patterns else LogSource(path=str(glob))
    h = host(disk_paths=[], logs=[src])
    findings, new = inspect_host(
        system(hosts=[h]), h, runner or LocalRunner(), Thresholds(), log_offsets=offsets
    )
    return {f.check_id: f for f in findings if f.target_kind == "log"}, new


def write(path: Path, text: str, mode: str = "a") -> None:
    with path.open(mode, encoding="utf-8") as fh:
        fh.write(text)


def lines(n: int, word: str = "LOG", start: int = 0) -> str:
    return "".join(
        f"2026-11-25 07:00:{i % 60:02d} [{1000 + i}] {word}:  line {start + i}\n" for i in range(n)
    )


def test_counts_new_lines_per_pattern_and_remembers_the_offset(tmp_path):
    log = tmp_path / "pg.log"
    write(log, lines(20) + lines(3, "ERROR") + lines(2, "FATAL") + lines(1, "PANIC"))
    found, offsets = scan(tmp_path / "*.log")
    assert found["log.error"].value == 3 and found["log.error"].severity == "warn"
    assert found["log.fatal"].value == 3 and found["log.fatal"].severity == "critical"
    assert (
        found["log.files"].severity == "ok"
        and found["log.error"].target_id == f"his-app:{tmp_path}/*.log"
    )
    st = log.stat()
    assert offsets == {str(log): (st.st_ino, st.st_size)}
    write(log, lines(5) + lines(2, "ERROR", 100))
    again, offsets2 = scan(tmp_path / "*.log", offsets)
    assert (
        again["log.error"].value == 2
        and again["log.fatal"].value == 0
        and again["log.fatal"].severity == "ok"
    )
    assert offsets2[str(log)] == (st.st_ino, log.stat().st_size)
    quiet, _ = scan(tmp_path / "*.log", offsets2)
    assert quiet["log.error"].value == 0 and quiet["log.error"].severity == "ok"


def test_a_line_being_written_is_counted_once_when_complete(tmp_path):
    log = tmp_path / "app.log"
    write(log, lines(3) + "2026 ERROR half a li")
    first, offsets = scan(log)
    assert first["log.error"].value == 0
    assert offsets[str(log)][1] == len(lines(3).encode())  # stops before the unfinished line
    write(log, "ne, now complete\n")
    second, offsets = scan(log, offsets)
    assert second["log.error"].value == 1 and offsets[str(log)][1] == log.stat().st_size
    assert second["log.error"].details["samples"] == ["2026 ERROR half a line, now complete"]


def test_rotation_between_runs_reads_the_old_tail_and_the_new_file(tmp_path):
    log = tmp_path / "server.log"
    write(log, lines(10) + lines(1, "ERROR"))
    _, offsets = scan(log)
    write(log, lines(2, "ERROR", 50))  # written after the first inspection, before rotation
    log.rename(tmp_path / "server.log.1")
    write(log, lines(4) + lines(3, "ERROR", 80))  # the new file
    found, new = scan(log, offsets)
    assert found["log.error"].value == 5
    assert found["log.error"].details["rotated_tail_read"] == [str(log)]
    assert new[str(log)] == (log.stat().st_ino, log.stat().st_size)
    assert "rotated" in found["log.files"].message_en


def test_truncated_log_is_read_from_the_start(tmp_path):
    log = tmp_path / "app.log"
    write(log, lines(50) + lines(4, "ERROR"))
    _, offsets = scan(log)
    inode = log.stat().st_ino
    write(log, lines(1) + lines(2, "ERROR"), mode="w")  # copytruncate: same inode, smaller
    assert log.stat().st_ino == inode
    found, new = scan(log, offsets)
    assert found["log.error"].value == 2 and "truncated" in found["log.files"].message_en
    assert new[str(log)] == (inode, log.stat().st_size)


def test_missing_log_is_a_warning(tmp_path):
    found, offsets = scan(tmp_path / "nothing-*.log")
    assert list(found) == ["log.files"]
    assert (
        found["log.files"].severity == "warn" and "nothing-*.log" in found["log.files"].message_zh
    )
    assert offsets == {}


def test_samples_are_the_last_five_and_masked(tmp_path):
    log = tmp_path / "his.log"
    secrets = [
        f"ERROR patient 11010119900307{1000 + i} phone 1381234{5670 + i} password=s3cret{i}"
        for i in range(7)
    ]
    write(log, "".join(s + "\n" for s in secrets))
    found, _ = scan(log)
    samples = found["log.error"].details["samples"]
    assert found["log.error"].value == 7 and len(samples) == 5
    assert samples[-1] == "ERROR patient <身份证号> phone <手机号> password=***"
    assert not any(re.search(r"\d{11}|s3cret", s) for s in samples)


def test_glob_with_spaces_and_several_files(tmp_path):
    folder = tmp_path / "his logs"
    folder.mkdir()
    write(folder / "a-2026-11-24.log", lines(2, "ERROR"))
    write(folder / "a-2026-11-25.log", lines(3, "ERROR") + lines(1, "FATAL"))
    write(folder / "other.txt", lines(9, "ERROR"))
    found, offsets = scan(folder / "a-*.log")
    assert found["log.error"].value == 5 and found["log.fatal"].value == 1
    assert sorted(offsets) == sorted(str(p) for p in folder.glob("a-*.log"))


PATTERNS = [
    "ERROR",
    "FATAL|PANIC",
    r"(?i)out of memory",
    r"\d{3}-\d{4}",
    r"^\[warn\]",
    r"conn(ection)? refused$",
    r"[A-Z]{2,3}_[0-9]+",
    r"a.c",
    r"x+y?z*q",
    r"[^a-z ]{4}",
    r"\s{2,}ERR",
    r"(?:foo|ba[rz])\.log",
    r"price: \$[0-9]+",
    r"(?i)[a-c]x",
    r"dead(lock)?s? detected",
    r"timeout \(\d+ ?ms\)",
    r"[]x-]z",
    r"a{0,2}b{2}",
]
SAMPLE_LINES = [
    "ERROR: duplicate key",
    "[warn] low disk",
    "x [warn] not at start",
    "FATAL: the end",
    "nothing here",
    "Out Of Memory: killed process",
    "call 555-1234 now",
    "connection refused",
    "conn refused",
    "conn refused.",
    "ABC_12 and AB_3",
    "abc",
    "a\tc",
    "xxzzq",
    "xyq",
    "ABCD",
    "AB1!",
    "   ERR",
    " ERR",
    "bar.log",
    "baz_log",
    "price: $12",
    "price: 12",
    "AX",
    "dx",
    "deadlocks detected",
    "dead detected",
    "timeout (500 ms)",
    "timeout (500ms)",
    "]z",
    "-z",
    "xz",
    "bb",
    "abb",
    "aab",
    "病人 ERROR 中文",
    "PANIC",
]


def test_patterns_count_exactly_what_python_re_counts(tmp_path):
    log = tmp_path / "mix.log"
    write(log, "".join(line + "\n" for line in SAMPLE_LINES * 3))
    patterns = {f"p{i}": p for i, p in enumerate(PATTERNS)}
    found, _ = scan(log, patterns=patterns)
    for name, regex in patterns.items():
        expected = sum(1 for line in SAMPLE_LINES * 3 if re.search(regex, line))
        assert found[f"log.{name}"].value == expected, (regex, log_scan.to_ere(regex))


def test_untranslatable_pattern_is_a_check_error_others_still_count(tmp_path):
    log = tmp_path / "k.log"
    write(log, "kernel: OOM killer\nERROR x\n")
    found, offsets = scan(log, patterns={"oom": r"\bOOM\b", "error": "ERROR"})
    assert found["log.oom"].severity == "check_error" and r"\b" in found["log.oom"].message_en
    assert found["log.error"].value == 1 and offsets


def test_to_ere_examples():
    assert log_scan.to_ere("a{2,3}") == "aaa?"
    assert log_scan.to_ere("(?i)ok") == "[oO][kK]"
    assert log_scan.to_ere(r"\d+\.log$") == r"[0-9]+\.log$"
    assert log_scan.to_ere(r"x{2,}") == "xx+"
    assert log_scan.to_ere("FATAL|PANIC") == "(FATAL|PANIC)"
    with pytest.raises(log_scan.Untranslatable):
        log_scan.to_ere(r"(a)\1")
    with pytest.raises(log_scan.Untranslatable):
        log_scan.to_ere(r"foo(?=bar)")


def test_plan_read_decisions():
    assert log_scan.plan_read("/l", 5, 100, None).reason == "new"
    assert log_scan.plan_read("/l", 5, 100, (5, 40)).start == 40
    assert log_scan.plan_read("/l", 5, 30, (5, 40)).reason == "truncated"
    rotated = log_scan.plan_read("/l", 6, 10, (5, 40))
    assert (rotated.reason, rotated.start, rotated.rotated_from) == ("rotated", 0, (5, 40))


def test_same_results_over_ssh(sshd, tmp_path):
    log = tmp_path / "remote.log"
    write(log, lines(30) + lines(4, "ERROR") + lines(1, "PANIC"))
    local, local_offsets = scan(log)
    runner = SshRunner(
        "his-app",
        SshParams(
            host=sshd.host, port=sshd.port, username=sshd.user, key_file=str(sshd.client_key)
        ),
    )
    try:
        remote, remote_offsets = scan(log, runner=runner)
        write(log, lines(1, "ERROR", 99))
        more, _ = scan(log, remote_offsets, runner=runner)
    finally:
        gc.collect()
        runner.close()
    assert {k: f.value for k, f in remote.items()} == {k: f.value for k, f in local.items()}
    assert remote_offsets == local_offsets and more["log.error"].value == 1


def test_relative_globs_are_relative_to_the_repository(tmp_path):
    rel = os.path.relpath(tmp_path / "*.log", REPO)
    write(tmp_path / "r.log", lines(1, "ERROR"))
    found, offsets = scan(rel)
    assert found["log.error"].value == 1 and list(offsets) == [str(tmp_path / "r.log")]


MEMORY_PROBE = textwrap.dedent("""
    import json, os, re, resource, sys, tracemalloc
    from hisops.inspect.engine import inspect_host
    from hisops.inventory.models import Host, LogSource, System
    from hisops.inventory.thresholds import Thresholds
    from hisops.targets.runner import LocalRunner

    class Timed(LocalRunner):
        \"\"\"Reports the peak RSS of the commands' own process trees (GNU time, when \
installed).\"\"\"
        peak_kb = None
        def run(self, command, timeout=30):
            if not os.path.exists("/usr/bin/time"):
                return super().run(command, timeout)
            res = super().run(f"/usr/bin/time -f 'hisops-maxrss %M' {command}", timeout)
            kb = [int(m) for m in re.findall(r"hisops-maxrss (\\d+)", res.stderr)]
            Timed.peak_kb = max([Timed.peak_kb or 0, *kb])
            return res

    path = sys.argv[1]
    block = ("x" * 100 + " LOG ok\\n") * 999 + "2026 ERROR 13812345678 boom\\n"
    repeats = int(sys.argv[2]) // len(block)
    with open(path, "w") as fh:
        for _ in range(repeats):
            fh.write(block)
    h = Host(id="h", local=True, disk_paths=[], logs=[LogSource(path=path)])
    s = System(id="s", name="s", name_en="s", hosts=[h])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    findings, offsets = inspect_host(s, h, Timed(), Thresholds())
    peak = tracemalloc.get_traced_memory()[1]
    errors = {f.check_id: f.value for f in findings if f.target_kind == "log"}
    print(json.dumps({"errors": errors, "expected": repeats, "py_peak": peak,
                      "self_growth_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base,
                      "commands_kb": Timed.peak_kb}))
""")


def _probe(path: Path, size: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path), str(size)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    path.unlink()
    return json.loads(out.stdout)


def test_big_log_in_bounded_memory(tmp_path):
    """~300 MB scanned in flat memory: our process grows by < 16 MB, the shell pipeline stays < 32
    MB, and neither depends on the file size (30 MB vs 300 MB)."""
    small = _probe(tmp_path / "small.log", 30 * 1024**2)
    big = _probe(tmp_path / "big.log", 300 * 1024**2)
    for result in (small, big):
        assert result["errors"]["log.error"] == result["expected"]
    assert big["expected"] > 2500
    assert big["py_peak"] < 16 * 1024**2 and big["self_growth_kb"] < 16 * 1024
    if big["commands_kb"] is not None:  # GNU time installed
        assert big["commands_kb"] < 32 * 1024
        assert abs(big["commands_kb"] - small["commands_kb"]) < 4 * 1024


def test_a_grep_without_byte_offsets_fails_visibly(tmp_path):
    """A host whose grep lacks -b (BusyBox-like): check_error per pattern, offsets not advanced."""
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "grep").write_text(
        '#!/bin/sh\ncase " $* " in *" -b "*|*" -a -b "*) '
        'echo "grep: invalid option -- b" >&2; exit 2;; esac\nexec /bin/grep "$@"\n'
    )
    (shim / "grep").chmod(0o755)

    class ShimmedRunner(LocalRunner):
        def run(self, command: str, timeout: float = 30):
            return super().run(f"PATH={shim}:$PATH {command}", timeout)

    log = tmp_path / "app.log"
    write(log, lines(3, "ERROR"))
    found, offsets = scan(log, runner=ShimmedRunner())
    assert (
        found["log.error"].severity == "check_error"
        and "grep exit 2" in found["log.error"].message_en
    )
    assert offsets == {}
