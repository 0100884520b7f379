"""The only package that knows Airflow: connections → targets, DAG defaults, roles, glue.

Domain packages (inventory, targets, catalog, selfcheck, notify …) never import this.
"""
