"""alerts.clip_offset_s: where the alert's event starts in its (possibly shared) clip

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 09:00:00.000000

Idempotent: a database whose ``alerts`` table was made by ``create_all`` from the newer models
(walking-skeleton databases, see 0001) already has the column. Nullable, no default: alerts stored
before it have no offset (the console then plays their clip from its start, as before).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMN = "clip_offset_s"


def upgrade() -> None:
    if COLUMN in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("alerts")}:
        return
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column(COLUMN, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column(COLUMN)
