"""备份保留 GFS retention tied to verified state.

Per database (or host, for file backups):
- GFS slots: the newest usable backup of each of the last ``keep_daily`` days, ``keep_weekly`` ISO
  weeks and ``keep_monthly`` months that have one (local time of the inventory). *Usable* means
  verified, or completed and still waiting for its drill; within a period a verified backup is
  preferred to a newer unverified one.
- Safety rules that beat the policy:
  * a backup is deleted only when a NEWER backup is verified;
  * the newest verified backup is never deleted — and "verified" means restorable now: before
    planning, ``plan_checked`` asks storage (``hisops.backup.trust``) about every completed/verified
    backup; vanished ones become ``missing`` (incident, notification) and the plan is computed on
    what is really there, so the newest *restorable* verified backup is the protected one;
  * ``missing`` backups hold no slot (their catalog rows are kept, marked deleted when expired);
  * running backups are never touched;
  * failed backups hold no slot (they prove nothing) but follow the "newer verified" rule too.
- ``plan`` decides (pure, unit-tested); ``apply`` deletes directories under the storage root only,
  records each deletion in the catalog (``mark_backup_deleted`` with the reason) and as an audit
  event. Dry run: the plan is logged and audited, nothing is deleted.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hisops.backup.manifest import parse_backup_dir_name

if TYPE_CHECKING:
    from hisops.catalog.repository import CatalogRepository
    from hisops.inventory.models import Inventory

log = logging.getLogger(__name__)
USABLE = ("verified", "completed")
STATE_ZH = {"failed": "失败", "missing": "文件已丢失"}


@dataclass(frozen=True)
class Candidate:
    id: int
    state: str
    taken_at: datetime  # when the backup was taken (catalog started_at)
    path: str | None = None


@dataclass(frozen=True)
class Policy:
    keep_daily: int
    keep_weekly: int
    keep_monthly: int


@dataclass(frozen=True)
class Decision:
    backup_id: int
    delete: bool
    reasons: tuple[str, ...]
    state: str
    taken_at: datetime
    path: str | None

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


@dataclass
class Plan:
    target_id: str
    decisions: list[Decision] = field(default_factory=list)

    @property
    def deletions(self) -> list[Decision]:
        return [d for d in self.decisions if d.delete]

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if not d.delete]


# --- periods ----------------------------------------------------------------------------------


def _day(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def _week(t: datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


def _month(t: datetime) -> str:
    return t.strftime("%Y-%m")


RULES: tuple[tuple[str, str, Callable[[datetime], str]], ...] = (
    ("daily", "每日", _day),
    ("weekly", "每周", _week),
    ("monthly", "每月", _month),
)


def _newest_first(items: Iterable[Candidate]) -> list[Candidate]:
    return sorted(items, key=lambda c: (c.taken_at, c.id), reverse=True)


def gfs_slots(candidates: list[Candidate], policy: Policy, tz: tzinfo) -> dict[int, list[str]]:
    """{backup id: ["daily 2025-03-01", …]} for the backups that hold a GFS slot."""
    usable = _newest_first(c for c in candidates if c.state in USABLE)
    slots: dict[int, list[str]] = {}
    for rule, label_zh, key in RULES:
        keep = getattr(policy, f"keep_{rule}")
        periods: dict[str, list[Candidate]] = {}
        for c in usable:
            periods.setdefault(key(c.taken_at.astimezone(tz)), []).append(c)
        for period in list(periods)[:keep]:  # dicts keep insertion order: newest periods first
            members = periods[period]
            chosen = next((c for c in members if c.state == "verified"), members[0])
            slots.setdefault(chosen.id, []).append(f"{label_zh} {rule} {period}")
    return slots


def plan(
    target_id: str,
    candidates: list[Candidate],
    policy: Policy,
    tz: tzinfo,
    protect: int | None = None,
) -> Plan:
    """Decide for every backup of one target: keep (with the reasons) or delete (with the reason).

    ``protect``: the id of the newest restorable verified backup (``trust.last_restorable``;
    0 = none): when given, it is what "last verified" means, whatever the candidates' states say."""
    slots = gfs_slots(candidates, policy, tz)
    verified = _newest_first(c for c in candidates if c.state == "verified")
    if protect is None:
        newest_verified = verified[0] if verified else None
    else:  # 0 = storage says nothing is restorable: keep everything
        newest_verified = next((c for c in verified if c.id == protect), None)
    result = Plan(target_id)
    for c in _newest_first(candidates):
        reasons = _keep_reasons(c, slots, newest_verified)
        if reasons:
            result.decisions.append(
                Decision(c.id, False, tuple(reasons), c.state, c.taken_at, c.path)
            )
        else:
            newer = newest_verified.id
            why = (
                (
                    f"超出保留策略且已有更新的已校验备份 #{newer} beyond GFS policy, "
                    f"newer verified backup #{newer} exists"
                )
                if c.state in USABLE
                else (
                    f"{STATE_ZH.get(c.state, c.state)}的备份，已有更新的已校验备份 #{newer} "
                    f"{c.state} backup, newer verified backup #{newer} exists"
                )
            )
            result.decisions.append(Decision(c.id, True, (why,), c.state, c.taken_at, c.path))
    return result


def _keep_reasons(
    c: Candidate, slots: dict[int, list[str]], newest_verified: Candidate | None
) -> list[str]:
    if c.state == "running":
        return ["运行中 running"]
    reasons = list(slots.get(c.id, []))
    if newest_verified is not None and c.id == newest_verified.id:
        reasons.insert(0, "最新已校验备份 last verified backup (never deleted)")
    elif newest_verified is None or (c.taken_at, c.id) > (
        newest_verified.taken_at,
        newest_verified.id,
    ):
        reasons.append("无更新的已校验备份 no newer verified backup")
    return reasons


# --- applying a plan --------------------------------------------------------------------------


def safe_backup_dir(path: str | None, root: Path, backup_id: int) -> Path | None:
    """The backup directory if it really is backup ``backup_id`` under ``root`` (never follow
    links)."""
    if not path:
        return None
    p = Path(path)
    parsed = parse_backup_dir_name(p.name)
    if (
        parsed is None
        or parsed[1] != backup_id
        or p.parent.resolve() != root.resolve()
        or p.is_symlink()
    ):
        raise ValueError(f"拒绝删除 refusing to delete {p}: not backup #{backup_id} under {root}")
    return p


@dataclass(frozen=True)
class Deleted:
    backup_id: int
    path: str | None
    reason: str
    files_existed: bool
    offsite: str | None = None


def apply(
    plan_: Plan,
    root: Path,
    repo: Any,
    *,
    actor: str,
    dag_id: str | None = None,
    run_id: str | None = None,
    delete_offsite: Callable[[Path], str | None] | None = None,
) -> list[Deleted]:
    """Delete what the plan says (directories under ``root`` only), recording every deletion."""
    done = []
    for d in plan_.deletions:
        target = safe_backup_dir(d.path, root, d.backup_id)
        existed = bool(target and target.exists())
        if existed:
            shutil.rmtree(target)
        offsite = delete_offsite(target) if (delete_offsite and target) else None
        if not repo.mark_backup_deleted(d.backup_id, d.reason):
            continue  # someone else recorded it meanwhile
        repo.add_audit_event(
            actor=actor,
            action="backup_delete",
            target=plan_.target_id,
            result="success",
            details={
                "backup_id": d.backup_id,
                "path": d.path,
                "reason": d.reason,
                "state": d.state,
                "files_existed": existed,
                "offsite": offsite,
            },
            dag_id=dag_id,
            run_id=run_id,
        )
        log.info("已删除 deleted backup #%s (%s) %s — %s", d.backup_id, d.state, d.path, d.reason)
        done.append(Deleted(d.backup_id, d.path, d.reason, existed, offsite))
    return done


def describe(plan_: Plan) -> list[str]:
    """Human-readable lines, one per backup (for logs and the audit trail)."""
    lines = []
    for d in plan_.decisions:
        verb = "删除 DELETE" if d.delete else "保留 keep"
        lines.append(
            f"{plan_.target_id} #{d.backup_id} {d.state} {d.taken_at:%Y-%m-%d %H:%M} "
            f"{verb}: {d.reason}"
        )
    return lines


def plan_checked(
    repo: CatalogRepository,
    inventory: Inventory,
    kind: str,
    target_id: str,
    policy: Policy,
    tz: tzinfo,
    **record_kw: Any,
) -> Plan:
    """The plan after storage was asked: vanished backups are recorded ``missing`` first, then the
    newest restorable verified backup is protected (recomputed, never the catalog's belief
    alone)."""
    from hisops.backup import trust

    for record in repo.backups_for(target_id, states=("completed", "verified")):
        if record.kind == kind:
            trust.ensure_present(repo, record, **record_kw)
    newest = trust.last_restorable(repo, inventory, target_id, kinds=(kind,), **record_kw)
    records = [r for r in repo.backups_for(target_id) if r.state != "failed" or r.path]
    return plan(
        target_id, candidates_from(records, kind), policy, tz, protect=newest.id if newest else 0
    )


def candidates_from(records: Iterable[Any], kind: str) -> list[Candidate]:
    """Catalog BackupRecords (not deleted) of one kind → candidates."""
    return [Candidate(r.id, r.state, r.started_at, r.path) for r in records if r.kind == kind]


# --- which targets, and whether this run deletes ------------------------------------------------

DRY_RUN_CHOICES = ("auto", "yes", "no")


@dataclass(frozen=True)
class Target:
    """One retention target: a database's logical backups or a host's file backups."""

    kind: str  # "database" | "files"
    target_id: str
    policy: Policy
    root: Path  # the target's directory under the storage root

    @property
    def key(self) -> str:
        """How plans name the target (``database:<id>``, ``files:<host>``)."""
        return f"{self.kind}:{self.target_id}"


def targets(inventory: Inventory, storage_root: Path) -> list[Target]:
    """Every database (its ``backup:`` policy) and every host with backup_paths (the global
    ``retention:`` policy)."""
    from hisops.backup.storage import target_root

    out = []
    for _, db in inventory.all_databases():
        b = db.backup
        policy = Policy(b.keep_daily, b.keep_weekly, b.keep_monthly)
        out.append(Target("database", db.id, policy, target_root(storage_root, db.id)))
    r = inventory.retention
    for _, host in inventory.all_hosts():
        if host.backup_paths:
            policy = Policy(r.keep_daily, r.keep_weekly, r.keep_monthly)
            root = target_root(storage_root, host.id, "files")
            out.append(Target("files", host.id, policy, root))
    return out


def resolve_dry_run(choice: str, run_type: str) -> bool:
    """'yes' → dry run, 'no' → delete; 'auto' → scheduled runs delete, anything manual only
    previews (``run_type``: Airflow's DagRunType value or name)."""
    if choice not in DRY_RUN_CHOICES:
        raise ValueError(f"dry_run must be one of {DRY_RUN_CHOICES}, not {choice!r}")
    return choice == "yes" or (
        choice == "auto" and str(run_type).split(".")[-1].lower() != "scheduled"
    )
