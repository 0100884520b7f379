"""Streaming a command's output (open_stream) locally and over the loopback sshd."""

from __future__ import annotations

import pytest
from hisops.targets.runner import LocalRunner, SshParams, SshRunner

BIG = (
    "head -c 3000000 /dev/zero | tr '\\0' 'a'; "
    "head -c 500000 /dev/zero | tr '\\0' 'e' >&2; echo done; exit 3"
)


def _runners(sshd):
    yield LocalRunner("local")
    yield SshRunner(
        "h1",
        SshParams(
            host=sshd.host,
            port=sshd.port,
            username=sshd.user,
            key_file=str(sshd.client_key),
            connect_timeout=5,
        ),
    )


@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_stream_delivers_everything_in_chunks_and_a_chatty_stderr_never_stalls(sshd, kind):
    runner = dict(zip(["local", "ssh"], _runners(sshd), strict=True))[kind]
    try:
        stream = runner.open_stream(BIG, timeout=60)
        sizes = [len(c) for c in stream.chunks()]
        result = stream.finish()
    finally:
        runner.close()
    assert sum(sizes) == 3_000_000 + len("done\n") and max(sizes) <= 64 * 1024 and len(sizes) > 10
    assert result.rc == 3 and result.stderr.startswith("eee") and len(result.stderr) == 64 * 1024


def test_local_stream_times_out():
    stream = LocalRunner().open_stream("sleep 5", timeout=0.3)
    assert list(stream.chunks()) == []
    assert stream.finish().rc == 124
