"""API key owners and expiry; per-org payment-data redaction and concurrent-call cap

Revision ID: 0006
Revises: 0005

An API key records who created it and may expire. An organization redacts card numbers and
security codes from its transcripts unless it turns that off, and may lower the deployment's
cap on its concurrent calls (NULL: the deployment's VELOX_MAX_CALLS_PER_ORG).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("created_by", sa.String(64), nullable=True))
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "organizations",
        sa.Column(
            "redact_payment_data", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
    )
    op.add_column("organizations", sa.Column("max_concurrent_calls", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("organizations", "max_concurrent_calls")
    op.drop_column("organizations", "redact_payment_data")
    op.drop_column("api_keys", "expires_at")
    op.drop_column("api_keys", "created_by")
