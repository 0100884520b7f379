"""维护门禁 The maintenance gate: what must hold before anything changes a production database.

Reusable by every capability that changes production (db_maintenance today, change control
next), independent of what the change is:

- :mod:`.window` — inside the inventory's maintenance window; no new step after it closes;
- :mod:`.backup` — a verified backup of the database, young enough, whose files exist;
- :mod:`.approval` — a person other than the requester, 系统管理员 or higher, approved it.

Pure domain: no Airflow import. Each check returns a typed verdict with Chinese and English reasons.
"""
