"""Inventory models: the hospital's systems as ops staff describe them (pydantic v2).

Every model forbids unknown keys and is frozen. Secrets never live here: databases, hosts
and channels name an Airflow connection id (the loader also rejects secret-looking keys).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)

from hisops.inventory.cleanup import CleanupRule, RecordRetention
from hisops.inventory.thresholds import ThresholdOverrides, Thresholds

REPO_ROOT = Path(__file__).resolve().parents[3]

Loc = tuple[str | int, ...]

SLUG_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
CONN_ID_RE = re.compile(r"[A-Za-z0-9_.-]+")
HHMM_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
DEFAULT_LOG_PATTERNS = {"error": "ERROR", "fatal": "FATAL|PANIC"}
KEEP_MINIMUM = {"keep_daily": 1, "keep_weekly": 0, "keep_monthly": 0}


def format_loc(loc: Loc) -> str:
    """('systems', 1, 'databases', 0, 'id') → 'systems[1].databases[0].id'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("["):
            out += part
        else:
            out += f".{part}" if out else part
    return out or "(root)"


class FieldProblems(ValueError):
    """Raised by model validators: problems located relative to the model being validated."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        self.problems = problems
        super().__init__(
            "; ".join(f"{format_loc(loc)}: {msg}" if loc else msg for loc, msg in problems)
        )


def _check(problems: list[tuple[Loc, str]]) -> None:
    if problems:
        raise FieldProblems(problems)


# --- field types -------------------------------------------------------------------------


def _slug(value: str) -> str:
    if not SLUG_RE.fullmatch(value):
        raise ValueError(
            "must be a slug: lowercase letters, digits, _ and - (at most 64), e.g. his_outpatient"
        )
    return value


def _conn_id(value: str) -> str:
    if not CONN_ID_RE.fullmatch(value):
        raise ValueError("not a valid Airflow connection id (allowed: letters, digits, _ . -)")
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _cron(value: str) -> str:
    fields = value.split()
    try:
        valid = (value.startswith("@") or len(fields) == 5) and croniter.is_valid(value)
    except Exception:  # noqa: BLE001 - croniter raises assorted errors on odd input
        valid = False
    if not valid:
        raise ValueError(
            f"not a valid cron expression: {value!r} "
            "(minute hour day month weekday, e.g. '0 7 * * *')"
        )
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError, OSError on odd keys
        raise ValueError(f"unknown time zone {value!r} (IANA name, e.g. Asia/Shanghai)") from None
    return value


def _hhmm_not_number(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError('must be a quoted "HH:MM" string (YAML reads unquoted 22:00 as a number)')
    return value


def _hhmm(value: str) -> str:
    if not HHMM_RE.fullmatch(value):
        raise ValueError('must be "HH:MM" (00:00-23:59)')
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return value


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("must be an http:// or https:// URL")
    return value


def _expectation(value: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(value.get("type"), str) or not value["type"]:
        raise ValueError(
            "needs a 'type' key (a GX expectation, e.g. expect_column_values_to_not_be_null)"
        )
    return value


Slug = Annotated[str, AfterValidator(_slug)]
ConnId = Annotated[str, AfterValidator(_conn_id)]
Text = Annotated[str, AfterValidator(_non_empty)]
Cron = Annotated[str, AfterValidator(_cron)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
HHMM = Annotated[str, BeforeValidator(_hhmm_not_number), AfterValidator(_hhmm)]
Regex = Annotated[str, AfterValidator(_regex)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Expectation = Annotated[dict[str, Any], AfterValidator(_expectation)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- global settings ---------------------------------------------------------------------


class Schedules(_Model):
    """Cron expressions, in the inventory's time zone."""

    inspection: Cron = "0 7 * * *"
    backup: Cron = "0 1 * * *"


class MaintenanceWindow(_Model):
    """Maintenance runs only inside [start, end); may cross midnight (22:00-02:00)."""

    start: HHMM
    end: HHMM

    @model_validator(mode="after")
    def _not_empty(self) -> MaintenanceWindow:
        _check([(("end",), "must differ from start")] if self.start == self.end else [])
        return self

    def contains(self, moment: time) -> bool:
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        moment = moment.replace(tzinfo=None)
        return start <= moment < end if start < end else (moment >= start or moment < end)


MAINTENANCE_KINDS = (
    "reindex",
    "drop_invalid",
    "vacuum_analyze",
    "analyze",
    "create_index",
    "drop_index",
)
MaintenanceKind = Literal[
    "reindex", "drop_invalid", "vacuum_analyze", "analyze", "create_index", "drop_index"
]


class Tuning(_Model):
    """performance_review (第九条) and db_maintenance (第八条): thresholds and safeguards."""

    review: Cron = "0 6 * * 1"  # weekly review, Monday 06:00
    slow_mean_ms: float = Field(20, gt=0)  # slow query: mean ≥ 20 ms …
    slow_min_calls: int = Field(100, ge=1)  # … and ≥ 100 calls (pghero)
    advice_min_drop_pct: float = Field(
        50, gt=0, lt=100
    )  # hypothetical index must cut cost this much
    unused_index_min_mb: float = Field(10, ge=0)
    big_table_mb: float = Field(100, ge=0)  # seq scans on tables at least this big are reported
    reindex_bloat_pct: float = Field(30, gt=0, le=100)
    reindex_min_mb: float = Field(1, ge=0)
    vacuum_dead_pct: float = Field(10, gt=0, le=100)
    vacuum_min_dead: int = Field(10_000, ge=0)
    analyze_changed_pct: float = Field(10, gt=0)
    lock_timeout_ms: int = Field(2000, ge=10, le=60_000)
    lock_retries: int = Field(3, ge=0, le=20)
    statement_timeout_s: int = Field(3600, ge=1)
    backup_max_age_hours: float = Field(24, gt=0)
    pre_approved: list[
        MaintenanceKind
    ] = []  # scheduled runs may apply these kinds without a person


class Offsite(_Model):
    """Second copy of backups: another local/mounted path, or a remote path over SFTP."""

    kind: Literal["sftp", "path"]
    ssh_conn_id: ConnId | None = None
    path: Text

    @model_validator(mode="after")
    def _conn_matches_kind(self) -> Offsite:
        if self.kind == "sftp" and not self.ssh_conn_id:
            _check([(("ssh_conn_id",), "required when kind is sftp")])
        if self.kind == "path" and self.ssh_conn_id:
            _check([(("ssh_conn_id",), "only used with kind sftp")])
        return self


class BackupStorage(_Model):
    path: Text
    offsite: Offsite | None = None


# sensible maxima: ten years of dailies, weeklies and monthlies (a typo such as 1e32 is an error)
MAX_KEEP = {"keep_daily": 3660, "keep_weekly": 520, "keep_monthly": 1200}


class Retention(_Model):
    """GFS retention; the default for every database's `backup:`."""

    keep_daily: int = Field(7, ge=1, le=MAX_KEEP["keep_daily"])
    keep_weekly: int = Field(4, ge=0, le=MAX_KEEP["keep_weekly"])
    keep_monthly: int = Field(6, ge=0, le=MAX_KEEP["keep_monthly"])


class Reports(_Model):
    path: Text


class Notification(_Model):
    """A channel; its secret (SMTP password, webhook key) lives in the Airflow connection."""

    name: Text
    kind: Literal["email", "wecom", "dingtalk", "webhook"]
    conn_id: ConnId
    to: list[Text] = []
    min_severity: Literal["warn", "critical"] = "warn"

    @model_validator(mode="after")
    def _email_needs_to(self) -> Notification:
        if self.kind == "email":
            if not self.to:
                _check([(("to",), "required for kind email (list of addresses)")])
            _check(
                [
                    (("to", i), "not an email address")
                    for i, a in enumerate(self.to)
                    if not EMAIL_RE.fullmatch(a)
                ]
            )
        return self


# --- targets -----------------------------------------------------------------------------


class BackupPolicy(_Model):
    """pg_dump backup of one database (keep_* default to the inventory's `retention:`)."""

    keep_daily: int = Field(7, ge=1, le=MAX_KEEP["keep_daily"])
    keep_weekly: int = Field(4, ge=0, le=MAX_KEEP["keep_weekly"])
    keep_monthly: int = Field(6, ge=0, le=MAX_KEEP["keep_monthly"])
    jobs: int = Field(2, ge=1, le=16)
    compress: int = Field(
        1, ge=0, le=9
    )  # gzip -1: ~3x faster than -5 for ~30% more bytes (bench/README.md)
    encrypt: bool = False
    encryption_conn_id: ConnId | None = None
    exact_count_max_rows: int = Field(5_000_000, ge=0, le=10**12)

    @model_validator(mode="after")
    def _encryption_key(self) -> BackupPolicy:
        if self.encrypt and not self.encryption_conn_id:
            _check([(("encryption_conn_id",), "required when encrypt is true")])
        return self


class PitrRepo(_Model):
    """Where pgBackRest keeps backups and WAL: a path on the database host, or an SFTP server."""

    kind: Literal["path", "sftp"] = "path"
    path: Text  # repo1-path (relative: to the inventory's base directory)
    sftp_host: str | None = None
    sftp_user: str | None = None
    sftp_private_key_file: Text | None = (
        None  # a key file on the database host, never the key itself
    )

    @model_validator(mode="after")
    def _sftp_fields(self) -> PitrRepo:
        problems: list[tuple[Loc, str]] = []
        if self.kind == "sftp" and not self.path.startswith("/"):
            problems.append((("path",), "must be an absolute path on the SFTP server"))
        if self.kind == "sftp":
            problems += [
                ((f,), "required when kind is sftp")
                for f in ("sftp_host", "sftp_user", "sftp_private_key_file")
                if not getattr(self, f)
            ]
        _check(problems)
        return self


class PitrSchedule(_Model):
    """When pitr_backup takes which backup type (cron, inventory time
    zone); the strongest due wins."""

    full: Cron = "0 1 * * 0"
    diff: Cron | None = "0 1 * * 1-6"
    incr: Cron | None = None


class PitrRetention(_Model):
    full: int = Field(2, ge=1)  # repo1-retention-full
    diff: int | None = Field(None, ge=1)  # repo1-retention-diff


class Pitr(_Model):
    """Physical backups + WAL archive of one PostgreSQL server with pgBackRest."""

    stanza: Slug
    repo: PitrRepo
    schedule: PitrSchedule = PitrSchedule()
    retention: PitrRetention = PitrRetention()
    rpo_seconds: int = Field(300, ge=1)
    compress_type: Literal["lz4", "zst", "gz", "none"] = "lz4"
    process_max: int = Field(2, ge=1, le=32)
    config_path: Text = "/etc/hisops/pgbackrest/pgbackrest.conf"  # written by hisops (0600)
    os_user: Text = "postgres"  # the OS user PostgreSQL runs as; pgBackRest runs as it
    socket_dir: Text = "/var/run/postgresql"
    scratch_path: Text | None = (
        None  # PITR drills restore here (room for one copy); default: beside config
    )
    #: restore_pitr's new clusters go here (room for whole copies); default: beside config
    restore_path: Text | None = None


class PgServer(_Model):
    """A PostgreSQL server (cluster) as a whole: what physical backups and PITR are about."""

    id: Slug
    conn_id: ConnId  # any database on the server (settings, restore points)
    data_directory: Text
    port: int | None = Field(None, ge=1, le=65535)  # None: the port of its connection
    host: Slug | None = None  # inventory host it runs on (pgBackRest runs there); None = here
    pg_bindir: Text | None = None
    pitr: Pitr | None = None


class Database(_Model):
    id: Slug
    conn_id: ConnId
    #: another database entry names the same connection on purpose (else that is an error)
    conn_id_shared: bool = False
    engine: Literal["postgresql"] = "postgresql"
    critical_tables: list[Text] = []
    critical_columns: dict[str, list[Text]] = {}
    backup: BackupPolicy = BackupPolicy()
    expectations: dict[str, list[Expectation]] = {}
    thresholds: ThresholdOverrides = ThresholdOverrides()
    pg_bindir: Text | None = None
    #: where the data lives (a host of the inventory and one of its disk_paths): days until full
    host: Slug | None = None
    data_path: Text | None = None
    server: Slug | None = None  # id of the PgServer it lives on (physical backups, PITR)


class LogSource(_Model):
    path: Text  # glob
    patterns: dict[str, Regex] = Field(
        default_factory=lambda: dict(DEFAULT_LOG_PATTERNS), min_length=1
    )

    def compiled(self) -> dict[str, re.Pattern[str]]:
        return {name: re.compile(rx) for name, rx in self.patterns.items()}


class Service(_Model):
    """A required service: its systemd unit name, and optionally the process to look for on
    hosts without systemd (default: the usual process of that unit, e.g. postgresql → postgres)
    and a TCP port that must be listening."""

    name: Text
    process: Text | None = None
    port: int | None = Field(None, ge=1, le=65535)


class Host(_Model):
    """A machine reached over SSH (`ssh_conn_id`) or this machine (`local: true`)."""

    id: Slug
    ssh_conn_id: ConnId | None = None
    local: bool = False
    disk_paths: list[Text] = ["/"]
    services: list[Text | Service] = []
    logs: list[LogSource] = []
    backup_paths: list[Text] = []
    thresholds: ThresholdOverrides = ThresholdOverrides()
    cleanup: list[CleanupRule] = []  # 保留清理 file rules (hisops.cleanup)
    data_directories: list[Text] = []  # database data directories here: never cleaned
    clinical_paths: list[Text] = []  # clinical data (EMR, images …): never cleaned

    @model_validator(mode="after")
    def _exactly_one_access(self) -> Host:
        if self.ssh_conn_id and self.local:
            _check([((), "ssh_conn_id and local: true are mutually exclusive (set exactly one)")])
        if not self.ssh_conn_id and not self.local:
            _check(
                [((), "set exactly one of ssh_conn_id (remote host) or local: true (this machine)")]
            )
        return self


class Endpoint(_Model):
    id: Slug
    url: HttpUrl
    expect_status: int = Field(200, ge=100, le=599)
    expect_text: str | None = None
    timeout_s: float = Field(5, gt=0, le=300)
    verify_tls: bool = True
    thresholds: ThresholdOverrides = ThresholdOverrides()


class System(_Model):
    id: Slug
    name: Text  # 中文名
    name_en: Text
    owner: str | None = None
    databases: list[Database] = []
    servers: list[PgServer] = []
    hosts: list[Host] = []
    endpoints: list[Endpoint] = []


Target = Database | Host | Endpoint


# --- the inventory -----------------------------------------------------------------------


def _backup_defaults(retention: Any) -> dict[str, int]:
    if not isinstance(retention, dict):
        return {}
    out = {}
    for key, minimum in KEEP_MINIMUM.items():
        value = retention.get(key)
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and minimum <= value <= MAX_KEEP[key]
        ):
            out[key] = value
    return out


def _database_with(db: Any, defaults: dict[str, int]) -> Any:
    if not isinstance(db, dict):
        return db
    backup = db.get("backup", {})
    return {**db, "backup": {**defaults, **backup}} if isinstance(backup, dict) else db


def _system_with(system: Any, defaults: dict[str, int]) -> Any:
    if not isinstance(system, dict) or not isinstance(system.get("databases"), list):
        return system
    return {**system, "databases": [_database_with(db, defaults) for db in system["databases"]]}


class Inventory(_Model):
    """The whole inventory. Load it with `hisops.inventory.load_inventory`."""

    version: Literal[1]
    hospital: Text
    timezone: TimeZone = "Asia/Shanghai"
    schedules: Schedules = Schedules()
    maintenance_window: MaintenanceWindow
    tuning: Tuning = Tuning()
    thresholds: ThresholdOverrides = ThresholdOverrides()
    backup_storage: BackupStorage
    retention: Retention = Retention()
    reports: Reports
    notifications: list[Notification] = []
    record_retention: RecordRetention = RecordRetention()
    systems: list[System] = Field(min_length=1)

    _base_dir: Path = PrivateAttr(default=REPO_ROOT)

    @model_validator(mode="before")
    @classmethod
    def _inherit_retention(cls, data: Any) -> Any:
        """`retention:` is the default keep_* of every database's `backup:`."""
        if not isinstance(data, dict) or not isinstance(data.get("systems"), list):
            return data
        defaults = _backup_defaults(data.get("retention", {}))
        return (
            {**data, "systems": [_system_with(s, defaults) for s in data["systems"]]}
            if defaults
            else data
        )

    @model_validator(mode="after")
    def _cross_checks(self) -> Inventory:
        _check(
            self._duplicate_ids()
            + self._duplicate_conn_ids()
            + self._data_places()
            + self._threshold_clashes()
            + self._cleanup_clashes()
            + self._server_refs()
        )
        return self

    def model_post_init(self, context: Any) -> None:
        if isinstance(context, dict) and context.get("base_dir"):
            self._base_dir = Path(context["base_dir"])

    # -- validation helpers --

    def _items(self) -> Iterator[tuple[str, Loc, Any]]:
        for i, system in enumerate(self.systems):
            yield "system", ("systems", i), system
            for kind, attr in (
                ("database", "databases"),
                ("server", "servers"),
                ("host", "hosts"),
                ("endpoint", "endpoints"),
            ):
                for j, item in enumerate(getattr(system, attr)):
                    yield kind, ("systems", i, attr, j), item

    def _duplicate_ids(self) -> list[tuple[Loc, str]]:
        seen: dict[tuple[str, str], Loc] = {}
        out: list[tuple[Loc, str]] = []
        for kind, loc, item in self._items():
            first = seen.setdefault((kind, item.id), loc)
            if first != loc:
                where = format_loc((*first, "id"))
                out.append(((*loc, "id"), f"duplicate {kind} id {item.id!r} (first at {where})"))
        return out

    def _duplicate_conn_ids(self) -> list[tuple[Loc, str]]:
        """Two database entries on one connection inspect and back up the same database twice."""
        first: dict[str, tuple[Loc, Database]] = {}
        out: list[tuple[Loc, str]] = []
        for kind, loc, item in self._items():
            if kind != "database":
                continue
            seen = first.setdefault(item.conn_id, (loc, item))
            if seen[0] != loc and not (item.conn_id_shared and seen[1].conn_id_shared):
                out.append(
                    (
                        (*loc, "conn_id"),
                        f"conn_id {item.conn_id!r} is also used by {format_loc(seen[0])} (both "
                        "entries would inspect and back up the same database); if intended, set "
                        "conn_id_shared: true on both",
                    )
                )
        return out

    def _data_places(self) -> list[tuple[Loc, str]]:
        hosts = {h.id: h for _, h in self.all_hosts()}
        out: list[tuple[Loc, str]] = []
        for kind, loc, item in self._items():
            if kind != "database":
                continue
            if item.data_path and not item.host:
                out.append(((*loc, "data_path"), "needs host: (the host whose disk holds it)"))
            elif item.host and item.host not in hosts:
                out.append(((*loc, "host"), f"no host {item.host!r} in the inventory"))
            elif item.host and item.data_path and item.data_path not in hosts[item.host].disk_paths:
                out.append(
                    (
                        (*loc, "data_path"),
                        f"must be one of host {item.host!r}'s disk_paths "
                        f"({', '.join(hosts[item.host].disk_paths)})",
                    )
                )
        return out

    def _server_refs(self) -> list[tuple[Loc, str]]:
        servers = {srv.id for s in self.systems for srv in s.servers}
        hosts = {h.id for s in self.systems for h in s.hosts}
        stanzas: dict[str, Loc] = {}
        out: list[tuple[Loc, str]] = []
        for kind, loc, item in self._items():
            if kind == "database" and item.server and item.server not in servers:
                out.append(
                    (
                        (*loc, "server"),
                        f"no server {item.server!r} in the inventory "
                        f"(known: {', '.join(sorted(servers)) or 'none'})",
                    )
                )
            if kind == "server" and item.host and item.host not in hosts:
                out.append(((*loc, "host"), f"no host {item.host!r} in the inventory"))
            if kind == "server" and item.pitr:
                first = stanzas.setdefault(item.pitr.stanza, loc)
                if first != loc:
                    out.append(
                        (
                            (*loc, "pitr", "stanza"),
                            f"stanza {item.pitr.stanza!r} is already used by {format_loc(first)}",
                        )
                    )
        return out

    def _threshold_clashes(self) -> list[tuple[Loc, str]]:
        base = Thresholds()
        out = [(("thresholds", n), p) for n, p in base.order_problems(self.thresholds)]
        effective = base.merged(self.thresholds)
        for kind, loc, item in self._items():
            if kind not in ("system", "server"):
                out += [
                    ((*loc, "thresholds", n), p)
                    for n, p in effective.order_problems(item.thresholds)
                ]
        return out

    def _cleanup_clashes(self) -> list[tuple[Loc, str]]:
        from hisops.inventory.cleanup import rule_problems

        out: list[tuple[Loc, str]] = []
        for i, system in enumerate(self.systems):
            for j, host in enumerate(system.hosts):
                loc: Loc = ("systems", i, "hosts", j)
                resolved = host.model_copy(
                    update={
                        "cleanup": [
                            r.model_copy(
                                update={"paths": [str(self.resolve_path(p)) for p in r.paths]}
                            )
                            for r in host.cleanup
                        ]
                    }
                )
                out += [
                    ((*loc, *rel), msg)
                    for rel, msg in rule_problems(
                        resolved.cleanup, self.protected_paths(loc), ("cleanup",)
                    )
                ]
        return out

    def protected_paths(self, host_loc: Loc | None = None) -> list[Any]:
        """Paths no cleanup rule may reach (absolute, with their source): the global ones, plus
        those of the host at ``host_loc``."""
        from hisops.inventory import cleanup as c

        out = []
        if host_loc is not None:
            host = self.systems[host_loc[1]].hosts[host_loc[3]]  # type: ignore[index]
            out += [
                c.Protected(
                    str(self.resolve_path(p)), (*host_loc, "data_directories", k), c.DATA_DIR
                )
                for k, p in enumerate(host.data_directories)
            ]
            out += [
                c.Protected(str(self.resolve_path(p)), (*host_loc, "clinical_paths", k), c.CLINICAL)
                for k, p in enumerate(host.clinical_paths)
            ]
        out.append(
            c.Protected(
                str(self.resolve_path(self.backup_storage.path)),
                ("backup_storage", "path"),
                c.BACKUPS,
            )
        )
        if self.backup_storage.offsite and self.backup_storage.offsite.kind == "path":
            out.append(
                c.Protected(
                    str(self.resolve_path(self.backup_storage.offsite.path)),
                    ("backup_storage", "offsite", "path"),
                    c.BACKUPS,
                )
            )
        out.append(
            c.Protected(str(self.resolve_path(self.reports.path)), ("reports", "path"), c.REPORTS)
        )
        for i, system in enumerate(
            self.systems
        ):  # PostgreSQL servers: data directory, pgBackRest repository
            for k, srv in enumerate(system.servers):
                loc = ("systems", i, "servers", k)
                out.append(
                    c.Protected(
                        str(self.resolve_path(srv.data_directory)),
                        (*loc, "data_directory"),
                        c.DATA_DIR,
                    )
                )
                if srv.pitr is not None and srv.pitr.repo.kind == "path":
                    out.append(
                        c.Protected(
                            str(self.resolve_path(srv.pitr.repo.path)),
                            (*loc, "pitr", "repo", "path"),
                            c.PGBACKREST,
                        )
                    )
        return out

    def host_loc(self, host_id: str) -> Loc:
        for i, system in enumerate(self.systems):
            for j, host in enumerate(system.hosts):
                if host.id == host_id:
                    return ("systems", i, "hosts", j)
        raise KeyError(f"no host {host_id!r} in the inventory")

    # -- conveniences --

    @property
    def base_dir(self) -> Path:
        """Directory that relative paths in the inventory are relative to (the repository)."""
        return self._base_dir

    def resolve_path(self, path: str | Path) -> Path:
        """Absolute paths unchanged; relative ones under `base_dir`."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self._base_dir / p

    def thresholds_for(self, target: Target | None = None) -> Thresholds:
        """Effective thresholds: defaults ← inventory `thresholds:` ← target's `thresholds:`."""
        effective = Thresholds().merged(self.thresholds)
        return effective if target is None else effective.merged(target.thresholds)

    def all_databases(self) -> list[tuple[System, Database]]:
        return [(s, d) for s in self.systems for d in s.databases]

    def all_servers(self) -> list[tuple[System, PgServer]]:
        """Servers with their paths (data directory, pgBackRest
        repository, config) made absolute."""
        return [(s, self._resolved_server(srv)) for s in self.systems for srv in s.servers]

    def _resolved_server(self, srv: PgServer) -> PgServer:
        update: dict[str, Any] = {"data_directory": str(self.resolve_path(srv.data_directory))}
        if srv.pitr is not None:
            pitr = srv.pitr
            paths = {
                "config_path": str(self.resolve_path(pitr.config_path)),
                "socket_dir": str(self.resolve_path(pitr.socket_dir)),
            }
            if pitr.scratch_path:
                paths["scratch_path"] = str(self.resolve_path(pitr.scratch_path))
            if pitr.restore_path:
                paths["restore_path"] = str(self.resolve_path(pitr.restore_path))
            repo = (
                pitr.repo
                if pitr.repo.kind == "sftp"
                else pitr.repo.model_copy(update={"path": str(self.resolve_path(pitr.repo.path))})
            )
            update["pitr"] = pitr.model_copy(update={**paths, "repo": repo})
        return srv.model_copy(update=update)

    def locate_server(self, server_id: str) -> tuple[System, PgServer]:
        """(system, server) for a PostgreSQL server id; KeyError naming the known ids."""
        return _locate("server", server_id, self.all_servers())

    def all_hosts(self) -> list[tuple[System, Host]]:
        return [(s, h) for s in self.systems for h in s.hosts]

    def all_endpoints(self) -> list[tuple[System, Endpoint]]:
        return [(s, e) for s in self.systems for e in s.endpoints]

    def find_system(self, system_id: str) -> System:
        return _find("system", system_id, [(s, s) for s in self.systems])

    def find_database(self, database_id: str) -> Database:
        return _find("database", database_id, self.all_databases())

    def find_host(self, host_id: str) -> Host:
        return _find("host", host_id, self.all_hosts())

    def find_endpoint(self, endpoint_id: str) -> Endpoint:
        return _find("endpoint", endpoint_id, self.all_endpoints())

    def locate_database(self, database_id: str) -> tuple[System, Database]:
        """(system, database) for a database id; KeyError naming the known ids."""
        return _locate("database", database_id, self.all_databases())

    def locate_host(self, host_id: str) -> tuple[System, Host]:
        """(system, host) for a host id; KeyError naming the known ids."""
        return _locate("host", host_id, self.all_hosts())

    def summary(self) -> str:
        counts = [
            (len(self.systems), "systems"),
            (len(self.all_databases()), "databases"),
            (len(self.all_hosts()), "hosts"),
            (len(self.all_endpoints()), "endpoints"),
            (len(self.notifications), "notification channels"),
        ]
        return ", ".join(f"{n} {what}" for n, what in counts)


def _find(kind: str, item_id: str, pairs: list[tuple[System, Any]]) -> Any:
    return _locate(kind, item_id, pairs)[1]


def _locate(kind: str, item_id: str, pairs: list[tuple[System, Any]]) -> tuple[System, Any]:
    for system, item in pairs:
        if item.id == item_id:
            return system, item
    known = ", ".join(item.id for _, item in pairs) or "none"
    raise KeyError(f"no {kind} {item_id!r} in the inventory (known: {known})")
