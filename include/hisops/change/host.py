"""Host changes over the target runner: a package install/upgrade, an application config file.

Commands are built from validated request fields only (package names, versions and paths are
checked in :mod:`hisops.change.request`) and quoted with ``shlex.quote``.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
from typing import TYPE_CHECKING, Any

from hisops.change.results import StepResult, failed, first_line, passed
from hisops.targets.errors import TargetUnreachable

if TYPE_CHECKING:
    from hisops.change.request import ChangeRequest
    from hisops.targets.runner import CommandRunner

APT_ENV = "DEBIAN_FRONTEND=noninteractive"
INSTALL_TIMEOUT = 30 * 60


def _run(runner: CommandRunner, command: str, timeout: float = 60) -> Any:
    return runner.run(command, timeout=timeout)


def _disk(runner: CommandRunner, path: str = "/") -> dict[str, Any]:
    res = _run(runner, f"df -Pk {shlex.quote(path)} | tail -1")
    parts = res.stdout.split()
    return {"disk_free_bytes": int(parts[3]) * 1024} if res.ok and len(parts) >= 4 else {}


# --------------------------------------------------------------------------- packages


def _manager(runner: CommandRunner) -> str | None:
    res = _run(
        runner,
        "command -v apt-get >/dev/null && echo apt || (command -v yum >/dev/null && echo yum)",
    )
    return res.stdout.strip() or None


def _spec(request: ChangeRequest, manager: str, version: str | None = None) -> str:
    version = version if version is not None else request.version
    if not version:
        return shlex.quote(request.package or "")
    return shlex.quote(
        f"{request.package}={version}" if manager == "apt" else f"{request.package}-{version}"
    )


def installed_version(runner: CommandRunner, package: str, manager: str) -> str | None:
    cmd = (
        f"dpkg-query -W -f='${{Status}} ${{Version}}' {shlex.quote(package)} 2>/dev/null"
        if manager == "apt"
        else f"rpm -q --qf 'install ok installed %{{VERSION}}-%{{RELEASE}}' "
        f"{shlex.quote(package)} 2>/dev/null"
    )
    res = _run(runner, cmd)
    words = res.stdout.split()
    return words[-1] if res.ok and "installed" in words and len(words) >= 4 else None


def assess_package(runner: CommandRunner, request: ChangeRequest) -> StepResult:
    """Which package manager, the version now, free disk, and the simulated install."""
    try:
        manager = _manager(runner)
        if manager is None:
            return failed(
                "assessment", "主机上没有 apt-get 或 yum", "neither apt-get nor yum on the host"
            )
        facts = {
            "manager": manager,
            "version_before": installed_version(runner, request.package or "", manager),
            **_disk(runner),
        }
        sim = (
            f"{APT_ENV} apt-get -s install {_spec(request, manager)}"
            if manager == "apt"
            else f"yum --assumeno install {_spec(request, manager)}"
        )
        res = _run(runner, sim, timeout=300)
    except TargetUnreachable as exc:
        return failed(
            "assessment", f"无法连接主机：{exc.reason}", f"host unreachable: {exc.reason}"
        )
    output = (res.stdout + res.stderr)[-2000:]
    simulated_ok = (
        res.ok if manager == "apt" else ("Nothing to do" in output or "Operation aborted" in output)
    )
    if not simulated_ok:
        return failed(
            "assessment",
            f"模拟安装失败：{first_line(res.stderr or res.stdout)}",
            f"simulated install failed: {first_line(res.stderr or res.stdout)}",
            **facts,
            simulation=output,
        )
    return passed(
        "assessment",
        f"模拟安装通过（当前版本 {facts['version_before'] or '未安装'}）",
        f"simulated install passed (installed now: {facts['version_before'] or 'none'})",
        **facts,
        simulation=output,
    )


def apply_package(runner: CommandRunner, request: ChangeRequest) -> StepResult:
    manager = _manager(runner) or "apt"
    before = {
        "version": installed_version(runner, request.package or "", manager),
        "manager": manager,
    }
    cmd = (
        f"{APT_ENV} apt-get install -y {_spec(request, manager)}"
        if manager == "apt"
        else f"yum -y install {_spec(request, manager)}"
    )
    res = _run(runner, cmd, timeout=INSTALL_TIMEOUT)
    after = installed_version(runner, request.package or "", manager)
    if not res.ok:
        return failed(
            "apply",
            f"安装失败：{first_line(res.stderr)}",
            f"install failed: {first_line(res.stderr)}",
            before=before,
            version_after=after,
        )
    return passed(
        "apply",
        f"已安装 {request.package} {after}（之前 {before['version'] or '未安装'}）",
        f"installed {request.package} {after} (before: {before['version'] or 'none'})",
        before=before,
        version_after=after,
    )


def verify_package(
    runner: CommandRunner, request: ChangeRequest, step: str = "verify"
) -> StepResult:
    manager = _manager(runner) or "apt"
    version = installed_version(runner, request.package or "", manager)
    if step == "verify_after_revert":
        return passed(
            step,
            f"当前版本 {version or '未安装'}",
            f"installed now: {version or 'none'}",
            version=version,
        )
    if version is None or (request.version and version != request.version):
        return failed(
            step,
            f"{request.package} 版本不符：{version}",
            f"{request.package} version is {version}",
            version=version,
        )
    return passed(
        step,
        f"{request.package} {version} 已安装",
        f"{request.package} {version} installed",
        version=version,
    )


def revert_package(
    runner: CommandRunner, request: ChangeRequest, before: dict[str, Any]
) -> StepResult:
    manager = before.get("manager") or "apt"
    if before.get("version"):
        spec = _spec(request, manager, before["version"])
        cmd = (
            f"{APT_ENV} apt-get install -y --allow-downgrades {spec}"
            if manager == "apt"
            else f"yum -y downgrade {spec}"
        )
    else:
        cmd = (
            f"{APT_ENV} apt-get remove -y {shlex.quote(request.package or '')}"
            if manager == "apt"
            else f"yum -y remove {shlex.quote(request.package or '')}"
        )
    res = _run(runner, cmd, timeout=INSTALL_TIMEOUT)
    if not res.ok:
        return failed(
            "revert",
            f"恢复原版本失败：{first_line(res.stderr)}",
            f"going back to the previous version failed: {first_line(res.stderr)}",
        )
    return passed(
        "revert",
        f"已恢复到 {before.get('version') or '未安装'}",
        f"back to {before.get('version') or 'not installed'}",
    )


# -------------------------------------------------------------------------- application config file


def _sha256(runner: CommandRunner, path: str) -> str | None:
    res = _run(runner, f"sha256sum {shlex.quote(path)} 2>/dev/null")
    return res.stdout.split()[0] if res.ok and res.stdout.strip() else None


def content_sha256(request: ChangeRequest) -> str:
    return hashlib.sha256((request.content or "").encode("utf-8")).hexdigest()


def assess_config_file(runner: CommandRunner, request: ChangeRequest) -> StepResult:
    path = request.path or ""
    folder = path.rsplit("/", 1)[0] or "/"
    try:
        current = _sha256(runner, path)
        writable = (
            _run(runner, f"test -w {shlex.quote(folder)} && echo yes").stdout.strip() == "yes"
        )
        facts = {
            "sha256_before": current,
            "exists": current is not None,
            "new_sha256": content_sha256(request),
            **_disk(runner, folder),
        }
    except TargetUnreachable as exc:
        return failed(
            "assessment", f"无法连接主机：{exc.reason}", f"host unreachable: {exc.reason}"
        )
    if not writable:
        return failed(
            "assessment", f"目录 {folder} 不可写", f"folder {folder} is not writable", **facts
        )
    if current == facts["new_sha256"]:
        return failed(
            "assessment",
            "新内容与现有文件相同，无需变更",
            "the new content equals the file: nothing to change",
            **facts,
        )
    return passed(
        "assessment",
        "文件可替换（将先备份并记录校验和）",
        "the file can be replaced (it is backed up with its checksum first)",
        **facts,
    )


def apply_config_file(runner: CommandRunner, request: ChangeRequest, change_id: int) -> StepResult:
    """Back the file up next to it (checksum recorded), then write the new content atomically."""
    path = request.path or ""
    q = shlex.quote(path)
    backup = f"{path}.hisops-change-{change_id}.bak"
    before: dict[str, Any] = {"backup": None, "sha256": _sha256(runner, path)}
    if before["sha256"] is not None:
        res = _run(runner, f"cp -p {q} {shlex.quote(backup)}")
        if not res.ok or _sha256(runner, backup) != before["sha256"]:
            return failed(
                "apply",
                "备份原文件失败，未做任何更改",
                "backing up the file failed; nothing changed",
                before=before,
            )
        before["backup"] = backup
    payload = base64.b64encode((request.content or "").encode("utf-8")).decode()
    tmp = shlex.quote(f"{path}.hisops-change-{change_id}.new")
    keep_mode = f"chmod --reference={q} {tmp} 2>/dev/null; " if before["sha256"] else ""
    res = _run(runner, f"printf %s {payload} | base64 -d > {tmp} && {keep_mode}mv -f {tmp} {q}")
    if not res.ok:
        return failed(
            "apply",
            f"写入新文件失败：{first_line(res.stderr)}",
            f"writing the file failed: {first_line(res.stderr)}",
            before=before,
        )
    return passed(
        "apply",
        f"已替换 {path}（原文件备份 {backup}）",
        f"replaced {path} (backup {backup})",
        before=before,
        sha256_after=_sha256(runner, path),
    )


def verify_config_file(
    runner: CommandRunner, request: ChangeRequest, step: str = "verify", expected: str | None = None
) -> StepResult:
    now = _sha256(runner, request.path or "")
    want = expected if step == "verify_after_revert" else content_sha256(request)
    if now != want:
        return failed(
            step, "文件校验和不符", "the file's checksum does not match", sha256=now, expected=want
        )
    return passed(step, "文件校验和相符", "the file's checksum matches", sha256=now)


def revert_config_file(
    runner: CommandRunner, request: ChangeRequest, before: dict[str, Any]
) -> StepResult:
    q = shlex.quote(request.path or "")
    cmd = f"cp -p {shlex.quote(before['backup'])} {q}" if before.get("backup") else f"rm -f {q}"
    res = _run(runner, cmd)
    if not res.ok:
        return failed(
            "revert",
            f"恢复原文件失败：{first_line(res.stderr)}",
            f"restoring the file failed: {first_line(res.stderr)}",
        )
    return passed("revert", "已恢复原文件", "the previous file is back")
