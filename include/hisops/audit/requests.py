"""Which HTTP requests to the api-server are audit events, and what they are called.

Pure (no Airflow, no I/O): ``classify(method, path, status, body)`` → an :class:`ApiAction`
or None. The api-server middleware (``hisops.airflow.audit_middleware``) asks it for every
request and records what it returns. Recorded: every change to a DAG, run or task instance
(trigger, clear, mark, delete, pause/unpause, backfill), every change of users, roles and
permissions, every login and logout, every other change through the REST API (connections,
variables, pools …), and every refused request (401/403) to a DAG or an O&M centre route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

API = "/api/v2"
CENTRE = "/hisops"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECRET_KEYS = re.compile(r"pass|secret|token|key|extra|value", re.IGNORECASE)

#: Chinese names of actions, for the audit page and exports
ACTION_NAMES: dict[str, str] = {
    "dag.trigger": "触发运行 trigger run",
    "dag.pause": "暂停 DAG pause",
    "dag.unpause": "启用 DAG unpause",
    "dag.delete": "删除 DAG delete",
    "dag.change": "修改 DAG change",
    "dag.backfill": "回填 backfill",
    "dag_run.clear": "清除运行 clear run",
    "dag_run.mark": "标记运行状态 mark run",
    "dag_run.delete": "删除运行 delete run",
    "task.clear": "清除任务（重跑） clear / re-run tasks",
    "task.mark": "标记任务状态 mark task",
    "task.delete": "删除任务实例 delete task instance",
    "task.change": "修改任务实例 change task instances",
    "dag_run.start": "开始运行 run started",
    "dag_run.restart": "清除后重新运行 run restarted after a clear",
    "dag_run.finish": "运行结束 run finished",
    "task.failed": "任务失败 task failed",
    "task.skipped": "任务跳过 task skipped",
    "task.rerun": "任务重试/重跑 task retried / re-run",
    "audit.prune": "审计记录清理 audit rows pruned",
    "auth.login": "登录 login",
    "auth.logout": "登出 logout",
    "user.create": "创建用户 create user",
    "user.update": "修改用户 update user",
    "user.delete": "删除用户 delete user",
    "role.create": "创建角色 create role",
    "role.update": "修改角色/权限 update role / permissions",
    "role.delete": "删除角色 delete role",
    "security.change": "用户权限管理 user/role administration",
    "api.change": "配置修改 configuration change",
    "api.refused": "越权访问 refused request",
    "centre.refused": "运维中心越权访问 refused O&M centre request",
    "incident.acknowledge": "确认事件 acknowledge incident",
    "audit.export": "审计导出 audit export",
    "restore.request": "恢复请求 restore request",
    "security.baseline.accept": "接受安全基线变化 accept security drift",
    "roles.sync": "同步角色 sync roles",
}


@dataclass(frozen=True)
class ApiAction:
    action: str
    target: str | None
    dag_id: str | None = None
    run_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


_DAG = re.compile(rf"^{API}/dags/(?P<dag>[^/]+)(?P<rest>/.*)?$")
_RUN = re.compile(r"^/dagRuns/(?P<run>[^/]+)(?P<rest>/.*)?$")
_FAB_API = re.compile(r"^/auth/fab/v1/(?P<kind>users|roles)(?:/(?P<name>[^/]+))?/?$")
_FAB_VERB = {"POST": "create", "PATCH": "update", "PUT": "update", "DELETE": "delete"}


def _safe(body: Any) -> dict[str, Any]:
    """Request fields worth keeping (never secrets: their keys only)."""
    if not isinstance(body, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in list(body.items())[:20]:
        if SECRET_KEYS.search(str(key)):
            out[str(key)] = "***"
        elif isinstance(value, str | int | float | bool) or value is None:
            out[str(key)] = value if not isinstance(value, str) else value[:200]
        elif isinstance(value, list) and len(value) <= 20:
            out[str(key)] = [
                v if isinstance(v, str | int | float | bool) else str(v)[:100] for v in value
            ]
    return out


def _run_action(method: str, dag: str, run: str, rest: str, body: dict) -> ApiAction:
    target = f"dag_run:{dag}/{run}"
    if rest == "/clear":
        return ApiAction("dag_run.clear", target, dag, run, _safe(body))
    if rest.startswith("/taskInstances"):
        task = rest.split("/")[2] if rest.count("/") >= 2 else None
        verb = {"PATCH": "task.mark", "DELETE": "task.delete"}.get(method, "task.change")
        if task is None and method == "PATCH":
            verb = "task.change"  # bulk
        return ApiAction(
            verb, f"task:{dag}/{run}/{task}" if task else target, dag, run, _safe(body)
        )
    if not rest and method == "PATCH":
        return ApiAction("dag_run.mark", target, dag, run, _safe(body))
    if not rest and method == "DELETE":
        return ApiAction("dag_run.delete", target, dag, run)
    return ApiAction("dag.change", target, dag, run, {"path": rest})


def _dag_action(method: str, dag: str, rest: str, body: dict) -> ApiAction:
    target = f"dag:{dag}"
    if rest in ("/dagRuns", "/dagRuns/") and method == "POST":
        return ApiAction("dag.trigger", target, dag, details=_safe(body))
    if rest == "/clearTaskInstances":
        return ApiAction("task.clear", target, dag, body.get("dag_run_id"), _safe(body))
    if rest == "/clearDagRuns":
        return ApiAction("dag_run.clear", target, dag, details=_safe(body))
    run = _RUN.match(rest)
    if run:
        return _run_action(method, dag, run["run"], run["rest"] or "", body)
    if not rest and method == "PATCH" and "is_paused" in body:
        return ApiAction("dag.pause" if body["is_paused"] else "dag.unpause", target, dag)
    if not rest and method == "DELETE":
        return ApiAction("dag.delete", target, dag)
    return ApiAction("dag.change", target, dag, details={"path": rest, **_safe(body)})


def _auth_action(method: str, path: str, body: dict) -> ApiAction | None:
    if path in ("/auth/token", "/auth/token/cli", "/auth/login"):
        return ApiAction(
            "auth.login",
            f"user:{body.get('username', '?')}",
            details={"via": "ui" if path == "/auth/login" else "api"},
        )
    if path.startswith("/auth/logout"):
        return ApiAction("auth.logout", None)
    fab = _FAB_API.match(path)
    if fab:
        kind = fab["kind"][:-1]
        name = fab["name"] or body.get("username") or body.get("name") or "?"
        return ApiAction(f"{kind}.{_FAB_VERB[method]}", f"{kind}:{name}", details=_safe(body))
    # FAB's own Flask pages (users, roles, permissions, resets)
    return ApiAction("security.change", path, details={"path": path, **_safe(body)})


def classify(method: str, path: str, status: int, body: Any = None) -> ApiAction | None:
    """The audit event a request is, or None when it is not one (reads, health, assets …)."""
    body = body if isinstance(body, dict) else {}
    method = method.upper()
    refused = status in (401, 403)
    if path.startswith("/auth/"):
        if method in MUTATING or path.startswith("/auth/logout"):
            return _auth_action(method, path.rstrip("/"), body)
        return ApiAction("api.refused", path) if refused else None
    dag = _DAG.match(path)
    if dag and (method in MUTATING or refused):
        if method == "POST" and (dag["rest"] or "").endswith("/list"):
            return ApiAction("api.refused", path) if refused else None  # a read via POST
        if method not in MUTATING:
            return ApiAction("api.refused", f"dag:{dag['dag']}", dag["dag"], details={"path": path})
        if body.get("dry_run") is True and not refused:
            return None  # the UI's preview of a clear
        return _dag_action(method, dag["dag"], dag["rest"] or "", body)
    if path.startswith(CENTRE + "/") or path == CENTRE:
        return ApiAction("centre.refused", path) if refused else None
    if path.startswith(API + "/") and method in MUTATING:
        if path.endswith("/list") or path.startswith(API + "/auth"):
            return ApiAction("api.refused", path) if refused else None
        if path == f"{API}/backfills" or path.startswith(f"{API}/backfills/"):
            dag_id = body.get("dag_id")
            return ApiAction(
                "dag.backfill", f"dag:{dag_id}" if dag_id else path, dag_id, details=_safe(body)
            )
        return ApiAction("api.change", path, details={"method": method, **_safe(body)})
    if refused and path.startswith(API + "/"):
        return ApiAction("api.refused", path)
    return None
