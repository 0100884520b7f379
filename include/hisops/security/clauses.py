"""等保 2.0 (GB/T 22239-2019, level 3, 8.1.4 安全计算环境) clauses the security checks map to."""

from __future__ import annotations

IDENTIFICATION = "8.1.4.1 身份鉴别 identification and authentication"
LOGIN_FAILURE = "8.1.4.1 b) 登录失败处理 login-failure handling"
REMOTE_CHANNEL = "8.1.4.1 c) 远程管理防窃听 encrypted remote administration"
ACCESS_CONTROL = "8.1.4.2 访问控制 access control (least privilege)"
AUDIT = "8.1.4.3 安全审计 security audit (records of every user's actions)"
INTRUSION = "8.1.4.4 入侵防范 intrusion prevention (minimal services and settings)"
INTEGRITY = "8.1.4.7 数据完整性 data integrity"

#: check id → clause
CLAUSE = {
    "security.superusers": ACCESS_CONTROL,
    "security.role_attributes": ACCESS_CONTROL,
    "security.connection_role": ACCESS_CONTROL,
    "security.grants": ACCESS_CONTROL,
    "security.public_grants": ACCESS_CONTROL,
    "security.definer_search_path": ACCESS_CONTROL,
    "security.hba": IDENTIFICATION,
    "security.password_encryption": IDENTIFICATION,
    "security.ssl": REMOTE_CHANNEL,
    "security.connection_logging": AUDIT,
    "security.pgaudit": AUDIT,
    "security.data_checksums": INTEGRITY,
    "security.failed_logins": LOGIN_FAILURE,
    "security.sshd": IDENTIFICATION,
    "security.ssh_failed_logins": LOGIN_FAILURE,
    "security.sudoers": ACCESS_CONTROL,
    "security.world_writable": INTRUSION,
}
