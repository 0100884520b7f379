-- Runs once, when the postgres volume is empty (docker-entrypoint-initdb.d), as the superuser.
-- 创建 Airflow 元数据库与 hisops 运维目录库，各用独立账号 (separate roles: least privilege).
--
-- Passwords come from the container environment (set from .env in docker-compose.yml) via
-- psql's \getenv (psql 15+); nothing secret is written in this file.

\set ON_ERROR_STOP on
\getenv airflow_password AIRFLOW_DB_PASSWORD
\getenv catalog_password HISOPS_CATALOG_PASSWORD

CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE ROLE hisops LOGIN PASSWORD :'catalog_password';

-- Airflow metadata DB (scheduler, api-server, Celery result backend)
CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8' TEMPLATE template0;
-- hisops catalog: findings, backups, drills, incidents, audit trail (等保: keep ≥ 6 months)
CREATE DATABASE hisops_catalog OWNER hisops ENCODING 'UTF8' TEMPLATE template0;

REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE hisops_catalog FROM PUBLIC;
