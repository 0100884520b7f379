"""Daily inspection checks (每日巡检): databases, hosts, logs and endpoints → findings.

Pure domain code (no Airflow): `engine` is the API the DAG glue calls; `findings` builds the
one result shape (`hisops.catalog.records.FindingRecord`). See engine.py for the contract.
"""

from hisops.inspect.engine import inspect_database, inspect_endpoint, inspect_host, metrics_from

__all__ = ["inspect_database", "inspect_endpoint", "inspect_host", "metrics_from"]
