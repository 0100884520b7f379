"""安全审计 Security audit — 第十二条 安全审计和监控; 等保 2.0 8.1.4 (read-only checks)."""

from __future__ import annotations

from airflow.sdk import dag, task
from hisops.airflow import access, dagkit
from hisops.airflow import security_tasks as t  # light: drivers are imported inside the task

INVENTORY = dagkit.parse_time_inventory()

DOC = f"""
### 安全审计 Security audit

**做什么 What it does** — 每天 06:30 只读检查每个数据库与主机的安全配置，结果写入运维目录库（发现、\
事件），
生成按等保 2.0 条款分组的中文报告（运维中心可看）。数据库：超级用户与角色属性、\
表权限（与目录库中的基线比较，
变化说明改了什么、自何时起）、授予 PUBLIC 的权限、未固定 search_path 的 SECURITY DEFINER \
函数、pg_hba 弱认证
（trust/password/md5）、password_encryption、ssl 与最低 TLS 版本、连接日志与 \
log_line_prefix、pgaudit、数据校验和。
主机：sshd（PermitRootLogin、PasswordAuthentication）、SSH 登录失败、数据库登录失败（服务器日志，\
按用户与来源）、
sudoers 与基线比较、任何人可写的文件（backup_paths 与报告目录）。
Daily read-only checks of every database (statement_timeout 5 s) and host; findings and incidents
in the catalog; a Chinese report grouped by 等保 2.0 clause. Inventory now: {INVENTORY.summary()}

**失败时怎么办 When it fails**
- 单个目标连不上 → 报告中为“未能检查 check error”，运行不失败；检查连接与防火墙。
  An unreachable target is a *check error* finding, not a failed run.
- 任务失败：看日志；多为 `hisops_catalog` 连接或目录库版本（`hisops catalog upgrade`）。
- 基线变化（drift）经核实为已批准的变更后：`hisops security accept-drift --target ID --item \
roles|grants|sudoers
  --reason "变更单号…"`（记入审计记录）。Accepting a drift is an audited action.
"""


@dag(
    dag_id="security_audit",
    dag_display_name="安全审计 Security audit",
    description="数据库与主机安全配置审计 security configuration audit (等保 2.0)",
    schedule="30 6 * * *",
    start_date=dagkit.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["hisops", "安全", "security"],
    default_args=dagkit.default_args(retries=1, retry_minutes=5),
    access_control=access.operator_dag(),
    doc_md=DOC,
)
def security_audit():
    @task(task_display_name="安全审计 Audit databases and hosts")
    def audit(**context) -> dict:
        return t.run_audit(context)

    audit()


security_audit()
