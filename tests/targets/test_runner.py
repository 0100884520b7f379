"""The command runner against this machine and a real sshd on loopback."""

from __future__ import annotations

import socket

import pytest
from hisops.targets.errors import TargetUnreachable
from hisops.targets.runner import LocalRunner, SshParams, SshRunner


def _ssh(sshd, **over) -> SshRunner:
    params = dict(
        host=sshd.host,
        port=sshd.port,
        username=sshd.user,
        key_file=str(sshd.client_key),
        connect_timeout=5,
    )
    params.update(over)
    return SshRunner("h1", SshParams(**params))


def test_local_runner_reports_output_and_exit_code():
    r = LocalRunner().run("echo 你好; echo err >&2; exit 3")
    assert (r.rc, r.stdout, r.stderr.strip()) == (3, "你好\n", "err")


def test_local_runner_times_out():
    r = LocalRunner().run("sleep 5", timeout=0.3)
    assert r.rc == 124 and "timed out" in r.stderr


def test_ssh_runner_runs_on_the_host(sshd):
    runner = _ssh(sshd)
    try:
        first = runner.run("hostname")
        second = runner.run("echo $((6*7)); exit 2")  # same connection reused
    finally:
        runner.close()
    assert first.stdout.strip() == socket.gethostname()
    assert (second.rc, second.stdout.strip()) == (2, "42")


def test_ssh_auth_failure_is_unreachable(sshd, tmp_path):
    import subprocess

    wrong = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    with pytest.raises(TargetUnreachable) as exc:
        _ssh(sshd, key_file=str(wrong)).run("true")
    assert exc.value.target == "h1" and "ssh" in exc.value.reason.lower()


def test_ssh_closed_port_is_unreachable(sshd):
    from tests.conftest import free_port

    with pytest.raises(TargetUnreachable):
        _ssh(sshd, port=free_port(), connect_timeout=2).run("true")
