"""Schema v2: cr_spill_imports remembers which spilled trace lines ``crossroads trace recover`` imported.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_meta = sa.table("cr_meta", sa.column("key", sa.String()), sa.column("value", sa.String()))


def upgrade() -> None:
    op.create_table(
        "cr_spill_imports",
        sa.Column("spill_id", sa.String(), primary_key=True),
        sa.Column("imported_at", sa.Float(), nullable=False),
    )
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="2"))


def downgrade() -> None:
    op.drop_table("cr_spill_imports")
    op.execute(_meta.update().where(_meta.c.key == "schema_version").values(value="1"))
