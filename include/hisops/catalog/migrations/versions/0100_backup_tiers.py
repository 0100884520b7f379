"""backup tiers: state ``missing``, kind ``physical``, incident resolution note

Revision ID: 0100_backup_tiers
Revises: 0001
Create Date: 2026-12-01

- ``backup.state`` gains ``missing``: the catalog believed in a backup whose files vanished
  (``hisops.backup.trust``); it is never again "last verified".
- ``backup.kind`` gains ``physical``: pgBackRest backups (full/diff/incr) live in the same catalog
  with the same states as the logical tier.
- ``incident.resolution_note``: what resolved an incident (e.g. the backup whose drill passed and
  the backups that stay failed).

Self-contained on purpose (history does not follow later edits of ``hisops.catalog.tables``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0100_backup_tiers"
down_revision = "0001"
branch_labels = None
depends_on = None

S = "hisops"
OLD_STATES = "state IN ('running', 'completed', 'verified', 'failed')"
NEW_STATES = "state IN ('running', 'completed', 'verified', 'failed', 'missing')"
OLD_KINDS = "kind IN ('database', 'files')"
NEW_KINDS = "kind IN ('database', 'files', 'physical')"


def _replace_check(name: str, condition: str) -> None:
    op.drop_constraint(name, "backup", type_="check", schema=S)
    op.create_check_constraint(name, "backup", condition, schema=S)


def upgrade() -> None:
    _replace_check("ck_backup_state", NEW_STATES)
    _replace_check("ck_backup_kind", NEW_KINDS)
    op.add_column("incident", sa.Column("resolution_note", sa.Text), schema=S)


def downgrade() -> None:
    op.execute(
        f"UPDATE {S}.backup SET state = 'failed', error = coalesce(error, 'missing') "
        "WHERE state = 'missing'"
    )
    physical = f"SELECT id FROM {S}.backup WHERE kind = 'physical'"
    op.execute(f"DELETE FROM {S}.backup_verification WHERE backup_id IN ({physical})")
    op.execute(
        f"UPDATE {S}.maintenance_operation SET backup_id = NULL WHERE backup_id IN ({physical})"
    )
    op.execute(
        f"UPDATE {S}.change_record SET pre_backup_id = NULL WHERE pre_backup_id IN ({physical})"
    )
    op.execute(f"DELETE FROM {S}.backup WHERE kind = 'physical'")
    _replace_check("ck_backup_kind", OLD_KINDS)
    _replace_check("ck_backup_state", OLD_STATES)
    op.drop_column("incident", "resolution_note", schema=S)
