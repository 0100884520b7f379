"""运维中心 O&M centre — a FastAPI app mounted in the Airflow api-server by plugins/hisops_plugin.py.

Airflow does not protect plugin routes: every route here resolves the user from the Airflow
JWT (cookie of the UI session, or a Bearer token) and asks the auth manager for a permission
that matches what the route shows or does:

| route | permission (FAB) | who has it |
| GET  /                          | list DAGs                         | all four roles |
| GET  /reports/{run}             | read DAG daily_inspection         | all four roles |
| GET  /evidence/{id}/{file}      | read DAG backup_verification      | all four roles |
| POST /incidents/{id}/ack        | edit DAG daily_inspection         | 运维人员 and above |
| GET  /audit                     | read connections                  | 系统管理员, 超级管理员 |
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

INSPECTION_DAG = "daily_inspection"
VERIFICATION_DAG = "backup_verification"
TEMPLATES = Path(__file__).with_name("templates")


# --- authentication and authorisation -------------------------------------------------------
async def current_user(request: Request) -> Any:
    """The Airflow user of this request (401 without a valid session or token)."""
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get("_token")
    return await resolve_user_from_token(token)


UserDep = Annotated[Any, Depends(current_user)]


def _require(allowed: bool) -> None:
    if not allowed:
        raise HTTPException(status_code=403, detail="权限不足 forbidden: your role may not do this")


def may_list_dags(user: Any) -> bool:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().is_authorized_dag(method="GET", user=user)


def may_dag(method: str, dag_id: str) -> Callable[[Any], bool]:
    def check(user: Any) -> bool:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

        return get_auth_manager().is_authorized_dag(method=method, details=DagDetails(id=dag_id), user=user)
    return check


def may_administer(user: Any) -> bool:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().is_authorized_connection(method="GET", user=user)


# --- data ------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _repo():
    from hisops.airflow.connections import catalog_sqlalchemy_url
    from hisops.catalog.repository import CatalogRepository

    return CatalogRepository.from_url(catalog_sqlalchemy_url(), pool_size=2, max_overflow=2)


def _render(template: str, **context: Any) -> HTMLResponse:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    env.filters["age"] = _age
    env.filters["ts"] = lambda d: d.astimezone().strftime("%Y-%m-%d %H:%M") if d else "—"
    return HTMLResponse(env.get_template(template).render(**context))


def _age(since: datetime | None) -> str:
    if since is None:
        return "—"
    hours = (datetime.now(UTC) - since).total_seconds() / 3600
    return f"{hours:.1f} 小时 h" if hours < 48 else f"{hours / 24:.1f} 天 d"


def _user_name(user: Any) -> str:
    return getattr(user, "username", None) or user.get_name()


def _file_under(base: Path, relative: str) -> Path:
    """A file inside ``base`` (no path traversal), or 404."""
    target = (base / relative).resolve()
    if not target.is_relative_to(base.resolve()) or not target.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return target


# --- routes ----------------------------------------------------------------------------------
def create_app() -> FastAPI:
    app = FastAPI(title="hisops 运维中心 O&M centre", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def home(user: UserDep) -> HTMLResponse:
        _require(may_list_dags(user))
        repo = _repo()
        return _render("ops_centre.html.j2", user=_user_name(user), now=datetime.now(UTC),
                       selfcheck=repo.latest_selfcheck(), incidents=repo.open_incidents(),
                       runs=repo.recent_inspection_runs(10), backups=repo.recent_backups(20),
                       verifications={b.id: repo.verifications_for(b.id)[:1] for b in repo.recent_backups(20)},
                       can_ack=may_dag("PUT", INSPECTION_DAG)(user), can_audit=may_administer(user))

    @app.get("/reports/{inspection_run_id}")
    def report(inspection_run_id: int, user: UserDep) -> FileResponse:
        _require(may_dag("GET", INSPECTION_DAG)(user))
        run = _repo().get_inspection_run(inspection_run_id)
        if run is None or not run.report_path or not Path(run.report_path).is_file():
            raise HTTPException(status_code=404, detail="no report for this run")
        return FileResponse(run.report_path, media_type="text/html")

    @app.get("/evidence/{verification_id}/{file_path:path}")
    def evidence(verification_id: int, file_path: str, user: UserDep) -> FileResponse:
        _require(may_dag("GET", VERIFICATION_DAG)(user))
        ver = _repo().get_verification(verification_id)
        if ver is None or not ver.evidence_path:
            raise HTTPException(status_code=404, detail="no evidence for this drill")
        base = Path(ver.evidence_path)
        if base.is_file():  # a single evidence page
            base, file_path = base.parent, file_path or base.name
        return FileResponse(_file_under(base, file_path or "index.html"))

    @app.post("/incidents/{incident_id}/ack")
    def acknowledge(incident_id: int, user: UserDep) -> RedirectResponse:
        _require(may_dag("PUT", INSPECTION_DAG)(user))
        repo, name = _repo(), _user_name(user)
        changed = repo.acknowledge_incident(incident_id, name)
        repo.add_audit_event(actor=name, action="incident.acknowledge", target=f"incident:{incident_id}",
                             result="success" if changed else "failure", details={"via": "ops_centre"})
        return RedirectResponse(url="../../", status_code=303)

    @app.get("/audit", response_class=HTMLResponse)
    def audit(user: UserDep, limit: int = 200) -> HTMLResponse:
        _require(may_administer(user))
        return _render("audit.html.j2", user=_user_name(user), events=_repo().audit_events(limit=min(limit, 1000)))

    return app
