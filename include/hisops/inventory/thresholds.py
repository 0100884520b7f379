"""Check thresholds: defaults from shared/check-defaults.md, overridable globally and per target.

`Thresholds` holds one effective `Level` per check. The YAML holds `ThresholdOverrides`
(same names, each may set only `warn` or only `critical`; `null` disables that level).
Effective values: defaults ← inventory `thresholds:` ← database/host/endpoint `thresholds:`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

GB = 1024**3
Severity = Literal["ok", "warn", "critical"]


def fmt_number(value: float) -> str:
    """95.0 → "95", 0.05 → "0.05"."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def order_problem(warn: float | None, critical: float | None, lower_is_worse: bool) -> str | None:
    """The ordering error of a warn/critical pair, or None when fine."""
    if warn is None or critical is None:
        return None
    if lower_is_worse and warn < critical:
        return "warn must be >= critical (lower is worse)"
    if not lower_is_worse and warn > critical:
        return "warn must be <= critical"
    return None


MAX_LIMIT = 1e15  # no threshold is beyond a petabyte / 31 million years; bigger is a typo


class LevelOverride(BaseModel):
    """One check's override as written in the YAML: warn and/or critical (finite, bounded)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    warn: float | None = Field(None, ge=-MAX_LIMIT, le=MAX_LIMIT)
    critical: float | None = Field(None, ge=-MAX_LIMIT, le=MAX_LIMIT)


class Level(BaseModel):
    """Effective warn/critical pair (None = level disabled).

    A level is reached when value >= threshold, or value <= threshold when `lower_is_worse`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    warn: float | None = None
    critical: float | None = None
    lower_is_worse: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Level:
        problem = self.order_problem()
        if problem:
            raise ValueError(problem)
        return self

    def order_problem(self) -> str | None:
        return order_problem(self.warn, self.critical, self.lower_is_worse)

    def reached(self, value: float, limit: float | None) -> bool:
        if limit is None:
            return False
        return value <= limit if self.lower_is_worse else value >= limit

    def classify(self, value: float) -> Severity:
        """Severity of a measured value: "critical", "warn" or "ok"."""
        if self.reached(value, self.critical):
            return "critical"
        return "warn" if self.reached(value, self.warn) else "ok"

    def merged(self, override: LevelOverride | None) -> Level:
        """This level with the override's explicitly set keys applied (not re-validated)."""
        if override is None:
            return self
        return self.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})


def _hi(warn: float | None = None, critical: float | None = None) -> Any:
    return Level(warn=warn, critical=critical)


def _lo(warn: float | None = None, critical: float | None = None) -> Any:
    return Level(warn=warn, critical=critical, lower_is_worse=True)


class Thresholds(BaseModel):
    """Effective thresholds, one `Level` per check (units in the field names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # PostgreSQL
    uptime_minutes: Level = _lo(warn=10)  # restarted recently
    connections_pct: Level = _hi(80, 95)  # of max_connections
    idle_in_tx_seconds: Level = _hi(warn=300)  # one session idle in transaction
    idle_in_tx_count: Level = _hi(critical=100)  # sessions idle in transaction
    long_query_seconds: Level = _hi(60, 300)
    long_transaction_seconds: Level = _hi(300, 3600)  # oldest open transaction (xact_start)
    lock_wait_seconds: Level = _hi(60, 120)
    xid_age_pct: Level = _hi(90, 95)  # of autovacuum_freeze_max_age
    xid_age: Level = _hi(1.3e9, 1.4e9)  # absolute transaction id age
    cache_hit_pct: Level = _lo(99, 95)  # only with enough reads
    dead_tuples_min: Level = _hi(warn=10_000)  # and dead_tuples_pct below
    dead_tuples_pct: Level = _hi(warn=10)  # of live tuples
    vacuum_age_hours: Level = _hi(24, 48)
    analyze_age_hours: Level = _hi(24, 48)
    bloat_bytes: Level = _hi(1 * GB, 5 * GB)  # wasted bytes of a table or an index (estimate)
    index_bloat_pct: Level = _hi(warn=50)  # and share of the index wasted: both must be passed
    replication_lag_seconds: Level = _hi(5, 3600)
    replication_lag_bytes: Level = _hi(critical=1 * GB)
    inactive_slot_minutes: Level = _hi(warn=30)
    wal_ready_files: Level = _hi(10, 15)
    sequence_used_pct: Level = _hi(85, 95)
    invalid_indexes: Level = _hi(warn=1)
    # Hosts
    filesystem_used_pct: Level = _hi(80, 90)
    days_until_full: Level = _lo(warn=1)  # at current growth
    inodes_free_pct: Level = _lo(20, 10)
    load_per_cpu: Level = _hi(warn=1.5)  # 5-minute load average / CPUs
    memory_available_pct: Level = _lo(warn=10)
    swap_free_pct: Level = _lo(warn=50)
    failed_units: Level = _hi(warn=1)  # systemd
    clock_offset_seconds: Level = _hi(0.05, 1)
    # HTTP endpoints
    http_latency_seconds: Level = _hi(warn=1)
    tls_days_left: Level = _lo(20, 3)
    # Backups
    backup_age_hours: Level = _hi(26, 50)  # last verified backup

    def merged(self, overrides: BaseModel) -> Thresholds:
        """These thresholds with a `ThresholdOverrides` applied (not re-validated)."""
        names = overrides.model_fields_set
        return self.model_copy(
            update={n: getattr(self, n).merged(getattr(overrides, n)) for n in names}
        )

    def order_problems(self, overrides: BaseModel) -> list[tuple[str, str]]:
        """(name, problem) for overrides that set one level which clashes with an inherited one."""
        merged = self.merged(overrides)
        out: list[tuple[str, str]] = []
        for name in overrides.model_fields_set:
            override = getattr(overrides, name)
            if override is None or {"warn", "critical"} <= override.model_fields_set:
                continue  # both set: checked when the override was parsed
            level: Level = getattr(merged, name)
            problem = level.order_problem()
            if problem and level.warn is not None and level.critical is not None:
                effective = (
                    f"effective warn {fmt_number(level.warn)}, critical "
                    f"{fmt_number(level.critical)}"
                )
                out.append((name, f"{problem} ({effective})"))
        return out


class _OverridesBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*")
    @classmethod
    def _ordered(cls, value: LevelOverride | None, info: ValidationInfo) -> LevelOverride | None:
        if value is not None and info.field_name:
            lower = Thresholds.model_fields[info.field_name].default.lower_is_worse
            problem = order_problem(value.warn, value.critical, lower)
            if problem:
                raise ValueError(problem)
        return value


ThresholdOverrides = create_model(  # same field names as Thresholds, all optional
    "ThresholdOverrides",
    __base__=_OverridesBase,
    __doc__="Partial thresholds as written in the YAML (global or per target).",
    __module__=__name__,
    **{name: (LevelOverride | None, None) for name in Thresholds.model_fields},
)
