"""`local: true` hosts under a distributed executor: refused with a clear message, not measured on
whichever worker happened to run the task."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hisops.airflow import runtime
from hisops.selfcheck import service
from hisops.targets.runner import LocalRunner

HOST = SimpleNamespace(id="his-app-01", local=True, ssh_conn_id=None)


@pytest.mark.parametrize(
    "executor",
    [
        "CeleryExecutor",
        "airflow.providers.celery.executors.celery_executor.CeleryExecutor",
        "LocalExecutor,KubernetesExecutor",
    ],
)
def test_refused_under_a_distributed_executor(monkeypatch, executor: str) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    with pytest.raises(runtime.LocalHostRefused, match="ssh_conn_id") as err:
        runtime.runner_for(HOST)
    assert "his-app-01" in str(err.value) and "local: true" in str(err.value)
    probe = service.probe_one_host(SimpleNamespace(id="s1"), HOST, runtime.runner_for)  # a finding
    assert not probe.reachable and "LocalHostRefused" in probe.detail


def test_measured_here_under_the_local_executor(monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    assert isinstance(runtime.runner_for(HOST), LocalRunner)
