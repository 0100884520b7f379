"""Inventory models for 保留清理 retention cleanup: host file rules,
record retention, protected paths.

A rule names path globs on one host; nothing outside the glob's fixed prefix (the rule's root)
is ever touched. Protected paths (database data directories, backup storage, pgBackRest
repositories, reports and evidence, clinical data) may not overlap any rule's root: the
inventory is rejected with both field paths named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

Loc = tuple[str | int, ...]

GLOB_CHARS = re.compile(r"[*?\[]")
SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", re.IGNORECASE)
SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
#: 网络安全法 第二十一条 / 等保 2.0: network logs kept at least six
#: months. Configurable only upwards.
AUDIT_FLOOR_DAYS = 180


def _size(value: object) -> object:
    """'10M', '1.5 GiB', 4096 → bytes."""
    if isinstance(value, str):
        m = SIZE_RE.fullmatch(value)
        if not m:
            raise ValueError("must be a size in bytes or with a unit, e.g. 500K, 10M, 2G")
        return int(float(m.group(1)) * SIZE_UNITS[m.group(2).upper()])
    return value


def _rule_glob(value: str) -> str:
    p = PurePosixPath(value)
    if ".." in p.parts:
        raise ValueError("must not contain '..'")
    if "**" in value and any("**" in part and part != "**" for part in p.parts):
        raise ValueError("'**' must be a whole path component (e.g. /var/log/his/**/*.log)")
    if p.name == "**":
        raise ValueError("must end with a file name pattern (e.g. /var/log/his/**/*.log)")
    if not p.is_absolute() and p.parts[:1] == ("~",):
        raise ValueError("must be an absolute path (or relative to the repository, for the demo)")
    root = glob_root(value)
    if root in ("/", "", "."):
        raise ValueError(
            "the part before the first wildcard must be a directory below / (e.g. /var/log/his)"
        )
    return value


Size = Annotated[int, BeforeValidator(_size), Field(ge=0)]
RuleGlob = Annotated[str, AfterValidator(_rule_glob)]


def glob_root(pattern: str) -> str:
    """The fixed directory before the first wildcard: '/var/log/his/**/*.log' → '/var/log/his'."""
    parts = PurePosixPath(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if GLOB_CHARS.search(part) or part == "**":
            break
        fixed.append(part)
    return str(PurePosixPath(*fixed)) if fixed else ""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CleanupRule(_Model):
    """One host file rule: which files (globs), how old/large, how many to keep, delete or gzip."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    paths: list[RuleGlob] = Field(min_length=1)
    older_than_days: int = Field(ge=1)
    larger_than: Size | None = None
    keep_newest: int = Field(0, ge=0)  # per directory: the newest N matching files always stay
    action: Literal["delete", "compress"] = "delete"

    def roots(self) -> list[str]:
        return [glob_root(p) for p in self.paths]


class RecordRetention(_Model):
    """How long hisops keeps its own records (days). Audit events: never below 180 days."""

    findings_days: int = Field(90, ge=7)
    metric_samples_days: int = Field(90, ge=7)
    incidents_days: int = Field(730, ge=30)  # resolved incidents only
    reports_days: int = Field(365, ge=30)
    evidence_days: int = Field(365, ge=30)
    audit_events_days: int = Field(365, ge=AUDIT_FLOOR_DAYS)
    cleanup_records_days: int = Field(365, ge=30)
    airflow_metadata_days: int = Field(30, ge=1)
    task_logs_days: int = Field(30, ge=1)
    batch_rows: int = Field(5000, ge=100, le=100_000)


# --- protected paths ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Protected:
    path: str
    loc: Loc
    label: str  # 中文 English


DATA_DIR = "数据库数据目录 database data directory"
CLINICAL = "临床数据 clinical data"
BACKUPS = "备份存储 backup storage"
PGBACKREST = "pgBackRest 仓库 pgBackRest repository"
REPORTS = "报告与证据 reports and evidence"


def _norm(path: str) -> PurePosixPath:
    return PurePosixPath(re.sub(r"/+", "/", path.rstrip("/") or "/"))


def overlaps(a: str, b: str) -> bool:
    """True when one path is the other or lies inside it (component-wise, not by string prefix)."""
    pa, pb = _norm(a), _norm(b)
    return pa == pb or pa in pb.parents or pb in pa.parents


def rule_problems(
    rules: list[CleanupRule], protected: list[Protected], rules_loc: Loc
) -> list[tuple[Loc, str]]:
    """One problem per rule path whose root overlaps a protected path (both field paths named).

    Overlap is judged on the root (the glob's fixed directory), so a rule whose tree merely
    contains a protected directory is refused too, whatever its depth: simple and safe.
    """
    from hisops.inventory.models import format_loc

    out: list[tuple[Loc, str]] = []
    for i, rule in enumerate(rules):
        for j, (pattern, root) in enumerate(zip(rule.paths, rule.roots(), strict=True)):
            for p in protected:
                if root and overlaps(root, p.path):
                    out.append(
                        (
                            (*rules_loc, i, "paths", j),
                            f"rule {rule.name!r} path {pattern} overlaps protected path {p.path} "
                            f"({p.label}, {format_loc(p.loc)}) — 清理规则不得触及受保护路径",
                        )
                    )
    return out
