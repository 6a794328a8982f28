"""media_items.rendition: the state of a clip's H.264 copy for browsers (central.media.renditions)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 16:30:00.000000

Idempotent, as 0003: a database made by ``create_all`` from the newer models already has the
column, and on a fresh database ``media_items`` does not exist yet (``create_all`` makes it after the
migrations, as 0002 says). Nullable, no default: clips stored before it are looked at once by the rendition worker
(H.264 clips, the most, are marked ``none`` after a probe).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMN = "rendition"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("media_items") or COLUMN in {c["name"] for c in inspector.get_columns("media_items")}:
        return
    with op.batch_alter_table("media_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column(COLUMN, sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("media_items", schema=None) as batch_op:
        batch_op.drop_column(COLUMN)
