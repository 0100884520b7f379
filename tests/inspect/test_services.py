"""Services on hosts without systemd (item 6): the unit's process, a
listening port; the method is named."""

from __future__ import annotations

from pathlib import Path

from hisops.inspect import host_checks
from hisops.inspect.engine import inspect_host
from hisops.inventory.models import Service
from hisops.inventory.thresholds import Thresholds
from hisops.targets.runner import LocalRunner

from tests.inspect.conftest import host, system


def services_finding(services: list) -> object:
    h = host(disk_paths=[], services=services)
    findings, _ = inspect_host(system(hosts=[h]), h, LocalRunner(), Thresholds())
    return next(f for f in findings if f.check_id == "host.services")


def test_postgresql_unit_is_found_as_its_postgres_process(pg) -> None:
    """The suite's cluster runs as a `postgres` process, not as a systemd unit named postgresql."""
    systemd = Path("/run/systemd/system").is_dir()
    f = services_finding(["postgresql", Service(name="pg-port", process="postgres", port=pg.port)])
    methods = {name: s["method"] for name, s in f.details["services"].items()}
    if not systemd:
        assert f.severity == "ok", f.message_en
        assert methods["postgresql"] == "process postgres"
        assert "process postgres" in f.message_en and "进程 postgres" in f.message_zh
    assert methods["pg-port"] == f"process postgres, port {pg.port}"


def test_a_service_that_is_not_running_is_critical_and_says_how_it_was_judged(pg) -> None:
    f = services_finding(
        [
            Service(name="his-billing", process="his-billing-daemon"),
            Service(name="pg-elsewhere", process="postgres", port=1),
        ]
    )
    assert f.severity == "critical"
    states = {name: s["state"] for name, s in f.details["services"].items()}
    assert states == {"his-billing": "inactive", "pg-elsewhere": "not listening"}
    assert "process his-billing-daemon" in f.message_en and "port 1" in f.message_en


def test_unit_to_process_mapping() -> None:
    assert host_checks.process_names("postgresql@15-main.service") == ("postgres", "postmaster")
    assert host_checks.process_names("nginx") == ("nginx",)
    assert host_checks.process_names("ssh") == ("sshd",)
    assert host_checks.process_names("his-app") == ("his-app",)
