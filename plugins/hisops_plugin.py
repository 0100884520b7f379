"""hisops Airflow plugin: the 运维中心 O&M centre page (every route checks the user's permission)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from hisops.airflow.ops_centre import create_app


class HisopsPlugin(AirflowPlugin):
    name = "hisops"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/hisops", "name": "运维中心 O&M centre"}]
    external_views = [{"name": "运维中心 O&M centre", "href": "/hisops/", "url_route": "hisops",
                       "destination": "nav", "category": "hisops"}]
