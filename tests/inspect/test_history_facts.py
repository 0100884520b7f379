"""Size growth / days until full and restart detection fire from the catalog's history (item 5).

Through `hisops.inspect.run` with the real engine and a real catalog: the first run stores the
samples (server start, database size, free space of the database's host path); the next run is
fed them. History is shifted into the past so two runs a second apart look a day apart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hisops.catalog.records import MetricSample
from hisops.inspect import run as R
from hisops.inventory.models import Inventory
from hisops.targets.runner import LocalRunner


def inventory(conn_id: str) -> Inventory:
    return Inventory.model_validate(
        {
            "version": 1,
            "hospital": "测试医院",
            "maintenance_window": {"start": "01:00", "end": "05:00"},
            "backup_storage": {"path": "/tmp/b"},
            "reports": {"path": "/tmp/r"},
            "thresholds": {"days_until_full": {"warn": 1_000_000}},
            "systems": [
                {
                    "id": "s1",
                    "name": "门诊系统",
                    "name_en": "Outpatient",
                    "databases": [{"id": "d1", "conn_id": conn_id, "host": "h1", "data_path": "/"}],
                    "hosts": [{"id": "h1", "local": True, "disk_paths": ["/"]}],
                }
            ],
        }
    )


def inspect(catalog, inv: Inventory, dsn: str, name: str) -> dict:
    run_pk = catalog.start_inspection_run("daily_inspection", name)
    access = R.Access(dsn_for=lambda db: dsn, runner_for=lambda host: LocalRunner())
    R.inspect_system(
        inv, inv.systems[0], catalog, R.RunContext(run_pk), access, progress=lambda _: None
    )
    return {(f.target_id, f.check_id): f for f in catalog.findings_for(run_pk)}


def test_restart_and_days_until_full_come_from_earlier_runs(catalog, pg, new_db) -> None:
    db = new_db("history")
    inv, dsn = inventory("hist_db"), pg.dsn(db)
    first = inspect(catalog, inv, dsn, "day1")
    assert (
        first[("d1", "db.uptime")].details["restarted_since_last"] is False
    )  # nothing to compare yet
    assert first[("d1", "db.size_growth")].details.get("days_until_full") is None
    started = catalog.metric_series("d1", R.STARTED_METRIC)[-1].value
    assert catalog.metric_series("h1", "fs_free_bytes:/")[-1].value > 0

    # yesterday's samples: the server started an hour earlier than now, the database was smaller
    yesterday = datetime.now(UTC) - timedelta(days=1)
    size = catalog.metric_series("d1", R.SIZE_METRIC)[-1].value
    catalog.add_metric_samples(
        [
            MetricSample("d1", R.STARTED_METRIC, started - 3600, yesterday - timedelta(hours=1)),
            MetricSample("d1", R.SIZE_METRIC, size - 50 * 1024**2, yesterday),
        ]
    )
    with catalog.engine.begin() as conn:  # day 1's own samples are older than "yesterday" now
        conn.exec_driver_sql(
            "UPDATE hisops.metric_sample SET observed_at = observed_at - interval '2 days' "
            "WHERE target_id = 'd1' AND observed_at > now() - interval '1 hour'"
        )
    second = inspect(catalog, inv, dsn, "day2")
    up = second[("d1", "db.uptime")]
    assert up.details["restarted_since_last"] is True and up.severity in ("warn", "critical")
    assert "自上次巡检以来发生过重启" in up.message_zh
    growth = second[("d1", "db.size_growth")]
    assert growth.details["growth_bytes_per_day"] > 40 * 1024**2
    assert (
        growth.details["days_until_full"] is not None and growth.severity == "warn"
    )  # warn below 1e6 days
    assert "天写满磁盘" in growth.message_zh
