"""media_events: every event a media item is evidence of (one clip shared by overlapping events)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 09:00:00.000000

Idempotent: ``central.db.migrate`` runs ``create_all`` after the migrations, so a database that ran
the newer models before this migration already has the table (and its index). ``media_items`` has
no migration yet (it comes from ``create_all``): where it exists, its items' ``event_id`` is copied
into the new table, so an item stored before shared clips is found by event like a new one.
No foreign key to ``media_items``: on a fresh database this runs before ``create_all`` makes it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "ix_media_events_event"


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("media_events"):
        op.create_table(
            "media_events",
            sa.Column("media_id", sa.String(length=32), nullable=False),
            sa.Column("event_id", sa.String(length=32), nullable=False),
            sa.PrimaryKeyConstraint("media_id", "event_id"),
        )
    inspector = sa.inspect(bind)  # afresh: an inspector caches what it has seen
    if INDEX not in {ix["name"] for ix in inspector.get_indexes("media_events")}:
        op.create_index(INDEX, "media_events", ["event_id"], unique=False)
    if inspector.has_table("media_items"):
        op.execute(
            "INSERT INTO media_events (media_id, event_id) "
            "SELECT m.media_id, m.event_id FROM media_items m WHERE m.event_id IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM media_events e WHERE e.media_id = m.media_id AND e.event_id = m.event_id)"
        )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="media_events")
    op.drop_table("media_events")
