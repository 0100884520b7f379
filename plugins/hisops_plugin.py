"""hisops Airflow plugin: the 运维中心 O&M centre page and the audit trail of every request.

- ``fastapi_apps``: the O&M centre at ``/hisops`` (every route checks the user's permission);
- ``external_views``: "运维中心 O&M centre" in the navigation of every role (they all hold
  "Plugins" read, see ``hisops.airflow.roles``);
- ``fastapi_root_middlewares``: ``AuditMiddleware`` around the whole api-server — triggers,
  clears, marks, deletes, pause/unpause, logins, user/role changes and every refused request
  go to the append-only, hash-chained ``audit_event``;
- ``listeners``: ``audit_listener`` — run starts/finishes/restarts (scheduler, ``airflow`` CLI,
  ``dag.test``), failed, skipped and re-run tasks: the same trail, never what the middleware
  already recorded.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from hisops.airflow import audit_listener
from hisops.airflow.audit_middleware import AuditMiddleware
from hisops.airflow.ops_centre import create_app


class HisopsPlugin(AirflowPlugin):
    name = "hisops"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/hisops", "name": "运维中心 O&M centre"}]
    fastapi_root_middlewares = [
        {"middleware": AuditMiddleware, "args": [], "kwargs": {}, "name": "hisops 审计 audit trail"}
    ]
    listeners = [audit_listener]
    external_views = [
        {
            "name": "运维中心 O&M centre",
            "href": "/hisops/",
            "url_route": "hisops",
            "destination": "nav",
            "category": "hisops",
        }
    ]
