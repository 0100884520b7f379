"""What a change request says (the trigger form), validated with precise errors."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Kind = Literal["sql", "pg_config", "package", "config_file"]
KINDS: tuple[Kind, ...] = ("sql", "pg_config", "package", "config_file")
CHANGES_DIR = "changes"  # sqitch-style folders: changes/<name>/{deploy,verify,revert}.sql
SCRIPT_NAMES = ("deploy", "verify", "revert")
PARAM_RE = re.compile(r"[a-z_][a-z0-9_.]{0,62}")
PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.\-]{0,99}")
VERSION_RE = re.compile(r"[A-Za-z0-9.+:~\-]{1,100}")
FOLDER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}")


class RequestError(ValueError):
    """The request cannot be carried out as written (names the field)."""


@dataclass(frozen=True)
class Scripts:
    deploy: str
    verify: str
    revert: str

    def checksums(self) -> dict[str, str]:
        return {
            name: hashlib.sha256(getattr(self, name).encode("utf-8")).hexdigest()
            for name in SCRIPT_NAMES
        }


@dataclass(frozen=True)
class ChangeRequest:
    kind: Kind
    title: str
    reason: str
    impact: str
    requested_by: str
    database_id: str | None = None
    host_id: str | None = None
    scripts: Scripts | None = None
    source: str = "pasted"  # "pasted" or changes/<folder>
    parameter: str | None = None
    value: str | None = None
    restart_allowed: bool = False
    package: str | None = None
    version: str | None = None
    path: str | None = None
    content: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def targets(self) -> list[str]:
        return [t for t in (self.database_id, self.host_id) if t]

    def describe(self) -> dict[str, Any]:
        """What is stored with the change (scripts by checksum; file content by checksum)."""
        out = {
            k: v
            for k, v in asdict(self).items()
            if k not in ("scripts", "content") and v not in (None, {})
        }
        if self.scripts:
            out["script_sha256"] = self.scripts.checksums()
            out["scripts"] = asdict(self.scripts)
        if self.content is not None:
            out["content_sha256"] = hashlib.sha256(self.content.encode("utf-8")).hexdigest()
        return out


def _text(params: Mapping[str, Any], key: str, required: bool = True) -> str | None:
    value = params.get(key)
    value = value.strip() if isinstance(value, str) else value
    if required and not value:
        raise RequestError(f"{key}: required")
    return value or None


def load_scripts(base_dir: Path, folder: str) -> Scripts:
    """changes/<folder>/{deploy,verify,revert}.sql of the repository (no paths outside it)."""
    if not FOLDER_RE.fullmatch(folder):
        raise RequestError(f"sql_folder: {folder!r} is not a folder name under {CHANGES_DIR}/")
    root = base_dir / CHANGES_DIR / folder
    texts = {}
    for name in SCRIPT_NAMES:
        path = root / f"{name}.sql"
        if not path.is_file():
            raise RequestError(f"sql_folder: {CHANGES_DIR}/{folder}/{name}.sql does not exist")
        texts[name] = path.read_text(encoding="utf-8")
    return Scripts(**texts)


def _scripts(params: Mapping[str, Any], base_dir: Path) -> tuple[Scripts, str]:
    folder = _text(params, "sql_folder", required=False)
    pasted = {n: _text(params, f"{n}_sql", required=False) for n in SCRIPT_NAMES}
    if folder and any(pasted.values()):
        raise RequestError("sql_folder and pasted scripts: give one of them")
    if folder:
        return load_scripts(base_dir, folder), f"{CHANGES_DIR}/{folder}"
    missing = [f"{n}_sql" for n in SCRIPT_NAMES if not pasted[n]]
    if missing:
        raise RequestError(f"{', '.join(missing)}: required for a SQL change (or sql_folder)")
    return Scripts(**pasted), "pasted"  # type: ignore[arg-type]


def from_params(params: Mapping[str, Any], requested_by: str, base_dir: Path) -> ChangeRequest:
    """The trigger form → a request; RequestError names the first field that is wrong."""
    kind = _text(params, "kind")
    if kind not in KINDS:
        raise RequestError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    common: dict[str, Any] = {
        "kind": kind,
        "title": _text(params, "title"),
        "reason": _text(params, "reason"),
        "impact": _text(params, "impact"),
        "requested_by": requested_by,
    }
    if kind in ("sql", "pg_config"):
        common["database_id"] = _text(params, "database_id")
    else:
        common["host_id"] = _text(params, "host_id")
    if kind == "sql":
        common["scripts"], common["source"] = _scripts(params, base_dir)
    elif kind == "pg_config":
        common["parameter"], common["value"] = _text(params, "parameter"), _text(params, "value")
        if not PARAM_RE.fullmatch(common["parameter"]):
            raise RequestError(
                f"parameter: {common['parameter']!r} is not a configuration parameter name"
            )
        common["restart_allowed"] = bool(params.get("restart_allowed"))
    elif kind == "package":
        common["package"] = _text(params, "package")
        common["version"] = _text(params, "version", required=False)
        if not PACKAGE_RE.fullmatch(common["package"]):
            raise RequestError(f"package: {common['package']!r} is not a package name")
        if common["version"] and not VERSION_RE.fullmatch(common["version"]):
            raise RequestError(f"version: {common['version']!r} is not a package version")
    else:
        common["path"] = _text(params, "path")
        common["content"] = params.get("content") or ""
        if not str(common["path"]).startswith("/") or ".." in Path(common["path"]).parts:
            raise RequestError(f"path: {common['path']!r} must be an absolute path without '..'")
    return ChangeRequest(**common)
