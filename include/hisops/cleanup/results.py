"""Typed results of a cleanup run: what the catalog stores and the report renders."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

FileOutcome = Literal[
    "deleted", "compressed", "would_delete", "would_compress", "skipped", "failed"
]
StepState = Literal["ok", "dry_run", "skipped", "failed", "protected"]
Scope = Literal["host", "catalog", "airflow", "task_logs"]

DONE = ("deleted", "compressed")
PLANNED = ("would_delete", "would_compress")

# Reasons a file or step is left alone — constants because they repeat (report, tests, catalog).
OPEN_FOR_WRITING = "正在写入 open for writing"
WRITERS_UNKNOWN = (
    "无法判断是否正在写入 cannot tell whether it is open for writing (no /proc fdinfo, no lsof)"
)
CHANGED = "列出后已变化 changed since it was listed (modified, replaced or gone)"
HARD_LINKED = "有其他硬链接，删除不释放空间 has other hard links (deleting frees nothing)"
NOT_UTF8 = "文件名不是 UTF-8 file name is not UTF-8"
DIR_MOVED = "目录已移动或经符号链接 directory moved or now reached through a symlink"
ROOT_SYMLINK = "规则根目录经过符号链接 rule root is reached through a symlink"
ROOT_MISSING = "规则根目录不存在 rule root does not exist"
PROTECTED_HIT = "触及受保护路径 rule reaches a protected path"
UNREACHABLE = "主机不可达 host unreachable"


@dataclass(frozen=True, slots=True)
class FileAction:
    """One file a rule deleted, compressed, would touch (dry run), skipped or failed on."""

    host_id: str
    rule: str
    path: str
    size_bytes: int
    mtime: datetime
    action: Literal["delete", "compress"]
    outcome: FileOutcome
    reason: str | None = None
    bytes_freed: int = 0

    def row(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """The log line: exactly what happened / would happen to this file."""
        what = {
            "deleted": "已删除 deleted",
            "compressed": "已压缩 compressed",
            "would_delete": "将删除 would delete",
            "would_compress": "将压缩 would compress",
            "skipped": "跳过 skipped",
            "failed": "失败 failed",
        }[self.outcome]
        why = f" — {self.reason}" if self.reason else ""
        return (
            f"[{self.host_id}/{self.rule}] {what}: {self.path} ({self.size_bytes} B, "
            f"mtime {self.mtime:%Y-%m-%d %H:%M:%S %Z}){why}"
        )


@dataclass
class StepResult:
    """One rule on one host, one catalog table, the Airflow metadata, or the task log folder."""

    scope: Scope
    target: str  # host id, "catalog", "airflow"
    item: str  # rule name, table name
    state: StepState = "ok"
    reason: str | None = None
    files: int = 0  # files acted on (or that would be) / rows pruned
    rows: int = 0
    bytes_freed: int = 0
    skipped: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return asdict(self)

    def note(self, text: str, limit: int = 20) -> None:
        if len(self.notes) < limit:
            self.notes.append(text)
