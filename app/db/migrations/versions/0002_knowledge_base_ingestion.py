"""knowledge base ingestion

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.drop_index("ix_chunks_tsv", table_name="chunks", postgresql_using="gin")
    op.create_index(
        "ix_chunks_kb_tsv", "chunks", ["knowledge_base_id", "tsv"], postgresql_using="gin"
    )
    op.add_column(
        "agents",
        sa.Column(
            "knowledge",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.add_column(
        "messages",
        sa.Column(
            "citations",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'"),
            nullable=False,
        ),
    )
    op.add_column("documents", sa.Column("storage_path", sa.Text(), nullable=True))
    op.add_column("documents", sa.Column("title", sa.Text(), nullable=True))
    op.add_column(
        "documents",
        sa.Column("chunk_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "documents",
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )

    op.create_index(
        "ix_chunks_embedding_768",
        "chunks",
        [sa.literal_column("CAST(embedding AS VECTOR(768))").label("embedding_768")],
        unique=False,
        postgresql_using="hnsw",
        postgresql_ops={"embedding_768": "vector_cosine_ops"},
        postgresql_where=sa.text("dimension = 768"),
    )


def downgrade() -> None:
    op.drop_index("ix_chunks_kb_tsv", table_name="chunks", postgresql_using="gin")
    op.create_index("ix_chunks_tsv", "chunks", ["tsv"], postgresql_using="gin")
    op.drop_index(
        "ix_chunks_embedding_768",
        table_name="chunks",
        postgresql_using="hnsw",
        postgresql_where=sa.text("dimension = 768"),
    )
    op.drop_column("documents", "updated_at")
    op.drop_column("documents", "chunk_count")
    op.drop_column("documents", "title")
    op.drop_column("documents", "storage_path")
    op.drop_column("messages", "citations")
    op.drop_column("agents", "knowledge")
