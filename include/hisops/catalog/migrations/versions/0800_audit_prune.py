"""audit trail: old events may be pruned once a verified export vouches for them

Revision ID: 0800_audit_prune
Revises: 0300_audit
Create Date: 2026-12-01

The append-only trigger keeps refusing UPDATE and TRUNCATE, and every DELETE, except one that
(1) the transaction asked for (``SET LOCAL hisops.audit_prune = 'on'``, done only by
``CatalogRepository.prune_audit_events``), (2) removes a chained event whose ``seq`` a
chain-verified export covers (``audit_export.chain_ok``), and (3) is older than the 180-day floor
(网络安全法 第二十一条). Self-contained on purpose (a migration is history).
"""

from __future__ import annotations

from alembic import op

revision = "0800_audit_prune"
down_revision = "0300_audit"
branch_labels = None
depends_on = None

GUARD = """
CREATE OR REPLACE FUNCTION hisops.audit_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND current_setting('hisops.audit_prune', true) = 'on'
       AND OLD.seq IS NOT NULL
       AND OLD.at < now() - interval '180 days'
       AND OLD.seq <= (SELECT max(last_seq) FROM hisops.audit_export WHERE chain_ok) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'hisops.audit_event is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = '审计记录不可修改或删除 (audit records may not be changed or deleted)';
END
$$
"""

ORIGINAL = """
CREATE OR REPLACE FUNCTION hisops.audit_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hisops.audit_event is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = '审计记录不可修改或删除 (audit records may not be changed or deleted)';
END
$$
"""


def upgrade() -> None:
    op.execute(GUARD)


def downgrade() -> None:
    op.execute(ORIGINAL)
