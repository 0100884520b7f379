"""What a restore asks for, who may ask it, and which backup it restores (decisions, no I/O).

Two targets:

- ``new_database`` (default): the backup is restored next to production under a new name; nothing
  existing is touched. Use it to recover rows, or to look before overwriting.
- ``overwrite``: production is replaced. Refused unless the confirmation field holds the database
  id exactly as it is spelled *and* the triggering user is 系统管理员 or higher (hisops roles only:
  FAB's built-in ``Admin`` is not one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from hisops import roles
from hisops.restore.errors import RestoreRefused

if TYPE_CHECKING:
    from hisops.catalog.records import BackupRecord

Target = Literal["new_database", "overwrite"]
TARGETS: tuple[Target, ...] = ("new_database", "overwrite")
LATEST_VERIFIED = "latest_verified"
#: the lowest rung of the role ladder that may overwrite production
OVERWRITE_FLOOR = roles.SYSTEM_ADMIN
RESTORABLE_STATES = ("completed", "verified")


@dataclass(frozen=True)
class RestoreRequest:
    """What the trigger form asked for, plus who asked (from the DAG run, not from the form)."""

    database_id: str
    backup: int | str  # a backup id or "latest_verified"
    target: Target = "new_database"
    new_database_name: str | None = None
    confirm: str | None = None
    user: str | None = None
    roles: frozenset[str] = frozenset()


class XComPlan:
    """A plan dataclass that goes from task to task as a plain dict (XCom)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The plan out of a step's XCom (which may carry more keys)."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class RestorePlan(XComPlan):
    """An authorized restore: everything later steps need (small, JSON-able for XCom)."""

    database_id: str
    backup_id: int
    backup_dir: str
    target: Target
    target_db: str  # the database that will hold the restored data at the end
    staging_db: str
    production_db: str  # the inventory database's current name (its connection's dbname)
    user: str


def backup_id_or(value: Any, keyword: str) -> int | str:
    """A form's backup field: a positive integer (also as text) or ``keyword``."""
    if isinstance(value, str) and value.strip() == keyword:
        return keyword
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        number = 0
    if number < 1 or isinstance(value, bool):
        raise RestoreRefused(
            f"备份编号无效：{value!r}", f"backup must be a positive id or {keyword!r}"
        )
    return number


def parse_backup_param(value: Any) -> int | str:
    """restore_database's backup field: a positive id or "latest_verified"."""
    return backup_id_or(value, LATEST_VERIFIED)


def request_from_form(params: dict[str, Any], user: str | None) -> RestoreRequest:
    """The trigger form as a request (roles are looked up later, only when they matter)."""
    return RestoreRequest(
        database_id=params["database_id"],
        backup=parse_backup_param(params["backup_id"]),
        target=params.get("target") or "new_database",
        new_database_name=params.get("new_database_name") or None,
        confirm=params.get("confirm"),
        user=user,
    )


def check_confirmation(req: RestoreRequest) -> None:
    """A known target; for overwrite, the database id typed into 'confirm' exactly as it is spelled
    (a trailing space or another case is refused: the person must type the very name)."""
    if req.target not in TARGETS:
        raise RestoreRefused(f"未知恢复目标 {req.target!r}", f"unknown target {req.target!r}")
    if req.target == "overwrite" and (req.confirm or "") != req.database_id:  # no strip, no folding
        raise RestoreRefused(
            f"覆盖恢复需要在确认栏输入数据库标识 {req.database_id}",
            f"overwrite needs the database id {req.database_id!r} typed into 'confirm'",
        )


def check_role(user: str | None, user_roles: Iterable[str]) -> None:
    """Refuse unless ``user`` is known and holds 系统管理员 or higher."""
    if not user:
        raise RestoreRefused("无法确定触发用户", "the triggering user is unknown")
    held = set(user_roles)
    if not roles.at_least(held, OVERWRITE_FLOOR):
        have = ", ".join(sorted(held)) or "无 none"
        raise RestoreRefused(
            f"用户 {user} 的角色（{have}）低于系统管理员",
            f"user {user!r} (roles: {have}) is below 系统管理员 (system administrator)",
        )


def authorize(req: RestoreRequest) -> None:
    """Refuse what must not run: overwrite without the typed confirmation or by a role below
    系统管理员."""
    check_confirmation(req)
    if req.target == "overwrite":
        check_role(req.user, req.roles)


def choose_backup(
    records: Iterable[BackupRecord], backup: int | str, database_id: str
) -> BackupRecord:
    """The catalog record to restore from: the given id (completed or verified, with files) or the
    newest verified one. ``records``: that database's backups, newest first."""
    records = list(records)
    if backup == LATEST_VERIFIED:
        found = next((r for r in records if r.state == "verified" and r.deleted_at is None), None)
        if found is None:
            raise no_verified_backup(database_id)
        return found
    found = next((r for r in records if r.id == backup), None)
    if found is None:
        raise RestoreRefused(
            f"备份 #{backup} 不属于 {database_id} 或不存在",
            f"backup #{backup} does not exist or is not a backup of {database_id}",
        )
    if found.state not in RESTORABLE_STATES or found.deleted_at is not None or not found.path:
        raise RestoreRefused(
            f"备份 #{backup} 状态为 {found.state}，不能用于恢复",
            f"backup #{backup} is {found.state}{' and deleted' if found.deleted_at else ''}; "
            "only completed or verified backups with files can be restored",
        )
    return found


def no_verified_backup(database_id: str) -> RestoreRefused:
    return RestoreRefused(
        f"{database_id} 没有已校验的备份", f"{database_id} has no verified backup"
    )
