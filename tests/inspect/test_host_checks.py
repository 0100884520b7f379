"""Host checks on this machine (LocalRunner) and over the real loopback sshd (SshRunner)."""

from __future__ import annotations

import gc
import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from hisops.inspect import host_checks
from hisops.inspect.engine import inspect_host, metrics_from
from hisops.inspect.findings import Target
from hisops.inventory.thresholds import Thresholds
from hisops.targets.runner import CommandResult, LocalRunner, SshParams, SshRunner

from tests.inspect.conftest import by_id, host, system, thresholds

SINGLE_CHECKS = {
    "host.reachable",
    "host.load",
    "host.memory",
    "host.swap",
    "host.clock",
    "host.uptime",
    "host.updates",
    "host.failed_units",
}


def close(runner: SshRunner) -> None:
    """Close after collecting paramiko's channel files (they hold cycles; collected after the
    transport is gone they print 'Exception ignored' at interpreter exit)."""
    gc.collect()
    runner.close()


def ssh_runner(sshd, **over) -> SshRunner:
    params = dict(
        host=sshd.host,
        port=sshd.port,
        username=sshd.user,
        key_file=str(sshd.client_key),
        connect_timeout=5,
    )
    params.update(over)
    return SshRunner("his-app", SshParams(**params))


def inspect(h, runner, th=None, **kw) -> tuple[dict, dict]:
    findings, offsets = inspect_host(system(hosts=[h]), h, runner, th or Thresholds(), **kw)
    return by_id(findings), offsets


def fs_now(path: str = "/") -> tuple[int, int, float]:
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    return used, avail, 100.0 * used / (used + avail)


def meminfo() -> dict[str, int]:
    with open("/proc/meminfo") as fh:
        return {line.split(":")[0]: int(line.split()[1]) for line in fh}


def test_local_host_checks_measure_this_machine():
    found, offsets = inspect(host(disk_paths=["/"]), LocalRunner())
    assert set(found) == SINGLE_CHECKS | {"host.fs_used:/", "host.inodes:/"}
    assert not [f.check_id for f in found.values() if f.severity == "check_error"], found
    assert offsets == {}
    _, _, pct = fs_now()
    assert found["host.fs_used:/"].value == pytest.approx(pct, abs=0.5)
    st = os.statvfs("/")
    assert found["host.inodes:/"].value == pytest.approx(100 * st.f_ffree / st.f_files, abs=0.5)
    assert found["host.load"].value == pytest.approx(os.getloadavg()[1] / os.cpu_count(), abs=0.5)
    mem = meminfo()
    assert found["host.memory"].value == pytest.approx(
        100 * mem["MemAvailable"] / mem["MemTotal"], abs=3
    )
    with open("/proc/uptime") as fh:
        assert found["host.uptime"].value == pytest.approx(float(fh.read().split()[0]) / 60, abs=1)
    assert found["host.clock"].value < 0.05 and found["host.clock"].severity == "ok"  # same clock
    if not os.path.isdir("/run/systemd/system"):
        assert (
            found["host.failed_units"].severity == "ok" and found["host.failed_units"].value is None
        )
    names = {m for _, m, _ in metrics_from(list(found.values()))}
    assert {"fs_used_pct:/", "fs_used_bytes:/", "load_per_cpu", "memory_available_pct"} <= names


@pytest.mark.skipif(not os.path.exists("/usr/bin/apt-get"), reason="Debian-like machine only")
def test_pending_updates_match_apt():
    out = subprocess.run(
        ["apt-get", "-s", "-o", "Debug::NoLocking=true", "upgrade"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    inst = [ln for ln in out.splitlines() if ln.startswith("Inst ")]
    security = [ln for ln in inst if "ecurity" in ln]
    f = inspect(host(disk_paths=["/"]), LocalRunner())[0]["host.updates"]
    assert f.details["total"] == len(inst) and f.value == len(security)
    assert f.severity == ("warn" if security else "ok")


def test_low_thresholds_raise_severities():
    th = thresholds(
        filesystem_used_pct={"warn": 0.1, "critical": 0.2},
        memory_available_pct={"warn": 100},
        load_per_cpu={"warn": 0},
        inodes_free_pct={"warn": 100, "critical": 99.9999},
    )
    found, _ = inspect(host(disk_paths=["/"]), LocalRunner(), th)
    assert found["host.fs_used:/"].severity == "critical"
    assert found["host.memory"].severity == "warn"
    assert found["host.load"].severity == "warn"
    assert found["host.inodes:/"].severity == "critical"
    assert found["host.fs_used:/"].suggestion_zh  # 处理建议 for the operator


def test_days_until_full_from_previous_sample():
    used, _, _ = fs_now()
    then = datetime.now(UTC) - timedelta(hours=24)
    th = thresholds(days_until_full={"warn": 1e9})
    found, _ = inspect(
        host(disk_paths=["/"]), LocalRunner(), th, fs_previous={"/": (then, used - 2**30)}
    )
    f = found["host.fs_used:/"]
    hours = (f.observed_at - then).total_seconds() / 3600
    per_day = (f.details["used_bytes"] - (used - 2**30)) / hours * 24
    assert f.details["growth_bytes_per_day"] == pytest.approx(per_day)
    assert f.details["days_until_full"] == pytest.approx(f.details["available_bytes"] / per_day)
    assert f.severity == "warn" and "天后写满" in f.message_zh


def test_required_services(sshd):
    ok, _ = inspect(host(services=["sshd"]), LocalRunner())
    assert ok["host.services"].severity == "ok"
    bad, _ = inspect(host(services=["sshd", "hisops-no-such-daemon"]), LocalRunner())
    f = bad["host.services"]
    assert f.severity == "critical" and f.value == 1 and "hisops-no-such-daemon" in f.message_zh
    assert f.details["services"]["sshd"]["state"] == "active"


def test_missing_disk_path_is_a_check_error_for_that_path_only():
    found, _ = inspect(host(disk_paths=["/", "/hisops/no/such/dir"]), LocalRunner())
    assert found["host.fs_used:/hisops/no/such/dir"].severity == "check_error"
    assert found["host.fs_used:/"].severity in ("ok", "warn", "critical")


def test_over_ssh_same_checks_same_machine(sshd):
    runner = ssh_runner(sshd)
    try:
        found, offsets = inspect(
            host(id="his-app", ssh_conn_id="his_app_ssh", disk_paths=["/"]), runner
        )
    finally:
        close(runner)
    assert set(found) == SINGLE_CHECKS | {"host.fs_used:/", "host.inodes:/"}
    assert not [f.check_id for f in found.values() if f.severity == "check_error"], found
    assert found["host.reachable"].severity == "ok"
    assert found["host.fs_used:/"].value == pytest.approx(fs_now()[2], abs=0.5)
    assert (
        found["host.clock"].value < 0.05
    )  # the loopback host shares our clock: the bound finds no offset


def test_ssh_host_unreachable(sshd):
    from tests.conftest import free_port

    runner = ssh_runner(sshd, port=free_port(), connect_timeout=2)
    findings, offsets = inspect_host(
        system(),
        host(ssh_conn_id="x"),
        runner,
        Thresholds(),
        log_offsets={"/var/log/x.log": (1, 10)},
    )
    assert [(f.check_id, f.severity) for f in findings] == [("host.reachable", "critical")]
    assert offsets == {}


def test_ssh_auth_failure(sshd, tmp_path):
    wrong = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    findings, offsets = inspect_host(
        system(), host(ssh_conn_id="x"), ssh_runner(sshd, key_file=str(wrong)), Thresholds()
    )
    assert [(f.check_id, f.severity) for f in findings] == [("host.reachable", "critical")]
    assert "ssh" in findings[0].message_en.lower() and offsets == {}


class HalfOutput:
    """Runs the real script locally but loses the second half of its output (a dropped session)."""

    target = "his-app"

    def run(self, command: str, timeout: float = 30) -> CommandResult:
        res = LocalRunner().run(command, timeout)
        lines = res.stdout.splitlines(keepends=True)
        return CommandResult(
            255, "".join(lines[: len(lines) // 2]), "connection reset", res.seconds
        )

    def close(self) -> None:
        return None


def test_incomplete_script_output_is_reported_not_crashed():
    found, _ = inspect(host(disk_paths=["/"]), HalfOutput())
    assert (
        found["host.checks"].severity == "check_error"
        and "connection reset" in found["host.checks"].message_en
    )
    assert found["host.load"].severity != "check_error"  # what arrived is still used
    assert any(f.severity == "check_error" for f in found.values() if f.check_id != "host.checks")


def _target(th: Thresholds | None = None) -> Target:
    return Target("host", "h", "s", th or Thresholds(), datetime.now(UTC))


RHEL_LIKE = """clock\t{now}
os\tLinux 5.14.0-427.el9.x86_64 x86_64
os_release\tRocky Linux 9.4 (Blue Onyx)
cpus\t8
loadavg\t14.02 13.10 9.00 3/900 1234
uptime\t300.5
mem\tMemTotal\t16000000
mem\tMemFree\t100000
mem\tMemAvailable\t800000
mem\tSwapTotal\t4000000
mem\tSwapFree\t1000000
init\tsystemd
failed\tkdump.service nfs-server.service\t
chrony\tSystem time     : 1.500000000 seconds slow of NTP time
ntpsync\tno
updates\tdnf\tna 7
fs\t/data\t/dev/mapper/rl-data 1000000 950000 50000 95% /data mount
inode\t/data\t/dev/mapper/rl-data 0 0 0 - /data mount
svc\tpostgresql-15\tfailed\tsystemd
done\t1
"""


def test_evaluates_a_rhel_like_host_output():
    """Output as a RHEL-like host with systemd, chrony and dnf prints it (no such host here)."""
    now = datetime.now(UTC).timestamp()
    found = by_id(
        host_checks.evaluate(
            _target(),
            RHEL_LIKE.format(now=now),
            services=["postgresql-15"],
            sent_at=now - 0.1,
            received_at=now + 0.1,
        )
    )
    assert found["host.load"].value == pytest.approx(13.10 / 8, abs=0.01)
    assert found["host.memory"].severity == "warn" and found["host.memory"].value == pytest.approx(
        5.0
    )
    assert found["host.swap"].severity == "warn" and found["host.swap"].value == pytest.approx(25.0)
    assert found["host.failed_units"].value == 2 and found["host.failed_units"].severity == "warn"
    assert (
        found["host.clock"].value == pytest.approx(1.5)
        and found["host.clock"].severity == "critical"
    )
    assert found["host.updates"].value == 7 and found["host.updates"].severity == "warn"
    assert found["host.uptime"].severity == "warn"
    assert found["host.services"].severity == "critical"
    assert (
        found["host.fs_used:/data"].value == pytest.approx(95.0)
        and found["host.fs_used:/data"].severity == "critical"
    )
    assert (
        found["host.fs_used:/data"].details["mount"] == "/data mount"
    )  # mount points may contain spaces
    assert found["host.inodes:/data"].severity == "ok" and found["host.inodes:/data"].value is None


def test_missing_tools_are_notes_or_check_errors():
    now = datetime.now(UTC).timestamp()
    minimal = (
        f"clock\t{now}\ncpus\t1\nloadavg\t0.1 0.1 0.1 1/1 1\nuptime\t99999\nmem\tMemTotal\t1000\n"
        "mem\tMemFree\t500\ninit\tother\nfailed\tna\nupdates\tnone\ndone\t1\n"
    )
    found = by_id(
        host_checks.evaluate(_target(), minimal, services=[], sent_at=now, received_at=now)
    )
    assert found["host.updates"].severity == "ok" and found["host.updates"].value is None
    assert found["host.failed_units"].severity == "ok"
    assert (
        found["host.memory"].details["available_bytes"] == 500 * 1024
    )  # MemAvailable missing: estimated
    broken = minimal.replace("updates\tnone", "updates\tapt\terror")
    assert (
        by_id(host_checks.evaluate(_target(), broken, services=[], sent_at=now, received_at=now))[
            "host.updates"
        ].severity
        == "check_error"
    )


def test_clock_offset_bound_never_invents_an_offset():
    facts = host_checks.parse_output("clock\t1000.0\n")
    assert host_checks.clock_offset(facts, 999.5, 1000.5) == (
        0.0,
        "compared with the inspection server",
    )
    assert host_checks.clock_offset(facts, 990.0, 990.2)[0] == pytest.approx(
        9.8
    )  # host ahead by ≥ 9.8 s
    assert host_checks.clock_offset(facts, 1003.0, 1004.0)[0] == pytest.approx(-3.0)
    assert host_checks.parse_ntpq("associd=0 status=0615 offset=-12.5") == pytest.approx(-0.0125)
    assert host_checks.parse_chrony(
        "System time : 0.000200 seconds fast of NTP time"
    ) == pytest.approx(0.0002)
