"""运维中心 O&M centre — a FastAPI app mounted in the Airflow api-server
(by plugins/hisops_plugin.py).

Airflow does not protect plugin routes: every route here resolves the user from the Airflow
JWT (cookie of the UI session, or a Bearer token) and asks the auth manager for a permission
that matches what the route shows or does (custom FAB resources from ``hisops.airflow.access``):

| route | permission (FAB) | who has it |
| GET  /                          | read "hisops 运维中心 O&M centre"   | all five roles |
| GET  /reports/{run}             | read "hisops 运维中心 O&M centre"   | all five roles |
| GET  /evidence/{id}/{file}      | read "hisops 运维中心 O&M centre"   | all five roles |
| GET  /changes/{id}              | read "hisops 运维中心 O&M centre"   | all five roles |
| GET  /kpi/{id}                  | read "hisops 运维中心 O&M centre"   | all five roles |
| GET  /evidence-packs/{id}       | read "hisops 审计记录 Audit trail"  | 审计/系统/超级管理员 |
| POST /incidents/{id}/ack        | edit DAG daily_inspection          | 运维人员/系统/超级管理员 |
| GET  /audit                     | read "hisops 审计记录 Audit trail"  | 审计/系统/超级管理员 |

Refused requests are written to the audit trail by ``hisops.airflow.audit_middleware``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from hisops.airflow.access import AUDIT_RESOURCE, CENTRE_RESOURCE

INSPECTION_DAG = "daily_inspection"
BACKUP_DAGS = {"database": "db_backup", "files": "file_backup"}
TEMPLATES = Path(__file__).with_name("templates")
EVIDENCE_PAGES = ("evidence.html", "index.html")  # our own page first, GX's Data Docs after
MAX_AUDIT_ROWS = 1000
ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
)


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


def _custom(resource: str) -> Callable[[Any], bool]:
    def check(user: Any) -> bool:
        from airflow.api_fastapi.app import get_auth_manager

        return get_auth_manager().is_authorized_custom_view(
            method="GET", resource_name=resource, user=user
        )

    return check


may_see_centre = _custom(CENTRE_RESOURCE)
may_read_audit = _custom(AUDIT_RESOURCE)


def may_dag(method: str, dag_id: str) -> Callable[[Any], bool]:
    def check(user: Any) -> bool:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

        return get_auth_manager().is_authorized_dag(
            method=method, details=DagDetails(id=dag_id), user=user
        )

    return check


# --- data ------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def catalog_repository():
    """The api-server's catalog repository (shared by these routes and the audit middleware)."""
    from hisops.airflow.connections import catalog_sqlalchemy_url
    from hisops.catalog.repository import CatalogRepository

    return CatalogRepository.from_url(catalog_sqlalchemy_url(), pool_size=2, max_overflow=2)


def _timezone() -> str:
    """The inventory's timezone (what people read times in); Asia/Shanghai without one."""
    try:
        from hisops.airflow.dagkit import parse_time_inventory

        return parse_time_inventory().timezone
    except Exception:  # noqa: BLE001 - an invalid inventory must not take the centre down
        from hisops.report.timefmt import DEFAULT_TZ

        return DEFAULT_TZ


def _hospital() -> str:
    try:
        from hisops.airflow.dagkit import parse_time_inventory

        return parse_time_inventory().hospital
    except Exception:  # noqa: BLE001 - an invalid inventory must not take the centre down
        return ""


def _change_states() -> dict[str, tuple[str, str]]:
    from hisops.report.kpi import CHANGE_STATES

    return CHANGE_STATES


def _age(since: datetime | None) -> str:
    if since is None:
        return "—"
    minutes = (datetime.now(UTC) - since).total_seconds() / 60
    if minutes < 90:
        return f"{minutes:.0f} 分钟 min"
    hours = minutes / 60
    return f"{hours:.1f} 小时 h" if hours < 48 else f"{hours / 24:.1f} 天 d"


def _run_link(dag_id: str | None, run_id: str | None) -> str | None:
    """The Airflow UI page of a DAG run (relative to the api-server's root)."""
    if not dag_id:
        return None
    return (
        f"/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"
        if run_id
        else f"/dags/{quote(dag_id)}"
    )


def _render(template: str, **context: Any) -> HTMLResponse:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from hisops.audit.requests import ACTION_NAMES
    from hisops.report.timefmt import fmt

    tz = _timezone()
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"])
    )
    env.filters["age"] = _age
    env.filters["ts"] = lambda d: fmt(d, tz)
    env.filters["ts_s"] = lambda d: fmt(d, tz, seconds=True)
    env.filters["times"] = lambda text: ISO_TIME.sub(lambda m: fmt(m.group(0), tz), text or "")
    env.filters["action_name"] = lambda a: ACTION_NAMES.get(a, a)
    env.globals["run_link"] = _run_link
    env.globals["backup_dag"] = BACKUP_DAGS.get
    return HTMLResponse(env.get_template(template).render(tz=tz, **context))


def _user_name(user: Any) -> str:
    return getattr(user, "username", None) or user.get_name()


def _file_under(base: Path, relative: str) -> Path:
    """A file inside ``base`` (no path traversal), or 404."""
    target = (base / relative).resolve()
    if not target.is_relative_to(base.resolve()) or not target.is_file():
        raise HTTPException(status_code=404, detail="文件不存在 not found")
    return target


def _evidence_default(base: Path) -> str:
    return next((p for p in EVIDENCE_PAGES if (base / p).is_file()), EVIDENCE_PAGES[-1])


def _limit(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_AUDIT_ROWS:
        raise HTTPException(
            status_code=400,
            detail=(
                f"limit 必须是 1–{MAX_AUDIT_ROWS} 的整数 limit must be an integer from 1 to "
                f"{MAX_AUDIT_ROWS} (got {raw!r})"
            ),
        )
    return value


# --- routes ----------------------------------------------------------------------------------
def create_app() -> FastAPI:
    app = FastAPI(
        title="hisops 运维中心 O&M centre", docs_url=None, redoc_url=None, openapi_url=None
    )

    @app.get("/", response_class=HTMLResponse)
    def home(user: UserDep) -> HTMLResponse:
        _require(may_see_centre(user))
        repo = catalog_repository()
        backups = repo.recent_backups(20)
        return _render(
            "ops_centre.html.j2",
            user=_user_name(user),
            now=datetime.now(UTC),
            selfcheck=repo.latest_selfcheck(),
            incidents=repo.open_incidents(),
            runs=repo.recent_inspection_runs(10),
            backups=backups,
            verifications={b.id: repo.verifications_for(b.id)[:1] for b in backups},
            changes=repo.recent_changes(20),
            kpi_reports=repo.kpi_reports(limit=10),
            packs=repo.evidence_packs(10),
            change_states=_change_states(),
            can_ack=may_dag("PUT", INSPECTION_DAG)(user),
            can_audit=may_read_audit(user),
        )

    @app.get("/reports/{inspection_run_id}")
    def report(inspection_run_id: int, user: UserDep) -> FileResponse:
        _require(may_see_centre(user))
        run = catalog_repository().get_inspection_run(inspection_run_id)
        if run is None or not run.report_path or not Path(run.report_path).is_file():
            raise HTTPException(status_code=404, detail="该巡检没有报告 no report for this run")
        return FileResponse(run.report_path, media_type="text/html")

    @app.get("/evidence/{verification_id}/{file_path:path}")
    def evidence(verification_id: int, file_path: str, user: UserDep) -> FileResponse:
        _require(may_see_centre(user))
        ver = catalog_repository().get_verification(verification_id)
        if ver is None or not ver.evidence_path:
            raise HTTPException(status_code=404, detail="该演练没有证据 no evidence for this drill")
        base = Path(ver.evidence_path)
        if base.is_file():  # a single evidence page
            base, file_path = base.parent, file_path or base.name
        return FileResponse(_file_under(base, file_path or _evidence_default(base)))

    @app.get("/changes/{change_id}", response_class=HTMLResponse)
    def change(change_id: int, user: UserDep) -> HTMLResponse:
        """The change's page, rendered from the catalog (current even while it waits)."""
        from hisops.report.kpi import render_change_page

        _require(may_see_centre(user))
        repo = catalog_repository()
        record = repo.get_change(change_id)
        if record is None:
            raise HTTPException(status_code=404, detail="变更不存在 no such change")
        html = render_change_page(
            hospital=_hospital(),
            tz=_timezone(),
            change=record,
            steps=repo.change_steps(change_id),
        )
        return HTMLResponse(html)

    @app.get("/kpi/{report_id}")
    def kpi(report_id: int, user: UserDep) -> FileResponse:
        _require(may_see_centre(user))
        found = [r for r in catalog_repository().kpi_reports(limit=500) if r.id == report_id]
        if not found or not Path(found[0].path).is_file():
            raise HTTPException(status_code=404, detail="考核报告不存在 no such KPI report")
        return FileResponse(found[0].path, media_type="text/html")

    @app.get("/evidence-packs/{pack_id}")
    def evidence_pack(pack_id: int, user: UserDep) -> FileResponse:
        """The month's 等保 archive: it holds the audit trail, so audit readers only."""
        _require(may_read_audit(user))
        pack = catalog_repository().get_evidence_pack(pack_id)
        if pack is None or not Path(pack.path).is_file():
            raise HTTPException(status_code=404, detail="证据包不存在 no such evidence pack")
        return FileResponse(pack.path, media_type="application/gzip", filename=Path(pack.path).name)

    @app.post("/incidents/{incident_id}/ack")
    def acknowledge(incident_id: int, user: UserDep) -> RedirectResponse:
        _require(may_dag("PUT", INSPECTION_DAG)(user))
        repo, name = catalog_repository(), _user_name(user)
        if repo.get_incident(incident_id) is None:
            raise HTTPException(
                status_code=404,
                detail=f"事件 {incident_id} 不存在 incident {incident_id} does not exist",
            )
        changed = repo.acknowledge_incident(incident_id, name)
        repo.add_audit_event(
            actor=name,
            action="incident.acknowledge",
            target=f"incident:{incident_id}",
            result="success" if changed else "failure",
            details={"via": "ops_centre"},
            reason=None if changed else "已确认或已关闭 already acknowledged or resolved",
        )
        return RedirectResponse(url="../../", status_code=303)

    @app.get("/audit", response_class=HTMLResponse)
    def audit(
        user: UserDep, limit: str = "200", action: str | None = None, result: str | None = None
    ) -> HTMLResponse:
        _require(may_read_audit(user))
        events = catalog_repository().audit_events(
            limit=_limit(limit), action=action or None, result=result or None
        )  # type: ignore[arg-type]
        return _render(
            "audit.html.j2", user=_user_name(user), events=events, action=action, result=result
        )

    return app
