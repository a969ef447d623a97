"""document frequency of each word per knowledge base, kept by triggers on chunks

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# One statement-level trigger per operation, each with its transition tables: a document's
# chunks arrive in one INSERT, so its words are counted in one pass, not row by row. Rows are
# upserted in key order, so two ingestions into one knowledge base lock them in the same
# order. A word whose count falls to 0 keeps its row (search skips it): deleting it would race
# an ingestion adding the same word.
ADD_WORDS = """
INSERT INTO knowledge_terms AS k (knowledge_base_id, lexeme, org_id, chunks)
SELECT c.knowledge_base_id, w.lexeme, c.org_id, count(*)
FROM {chunks} AS c, unnest(tsvector_to_array(c.tsv)) AS w(lexeme)
GROUP BY 1, 2, 3
ORDER BY 1, 2
ON CONFLICT (knowledge_base_id, lexeme) DO UPDATE SET chunks = k.chunks + excluded.chunks
"""
COUNT_TERMS = """
CREATE FUNCTION knowledge_terms_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE knowledge_terms AS k SET chunks = k.chunks - gone.n
        FROM (
            SELECT c.knowledge_base_id, w.lexeme, count(*) AS n
            FROM old_chunks AS c, unnest(tsvector_to_array(c.tsv)) AS w(lexeme)
            GROUP BY 1, 2
        ) AS gone
        WHERE k.knowledge_base_id = gone.knowledge_base_id AND k.lexeme = gone.lexeme;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {add_new_chunks};
    END IF;
    RETURN NULL;
END
$$
"""
TRIGGERS = {
    "INSERT": "REFERENCING NEW TABLE AS new_chunks",
    "DELETE": "REFERENCING OLD TABLE AS old_chunks",
    "UPDATE": "REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks",
}


def upgrade() -> None:
    op.create_table(
        "knowledge_terms",
        sa.Column("knowledge_base_id", sa.UUID(), nullable=False),
        sa.Column("lexeme", sa.Text(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(["knowledge_base_id"], ["knowledge_bases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("knowledge_base_id", "lexeme"),
    )
    op.create_index("ix_knowledge_terms_org_id", "knowledge_terms", ["org_id"])
    op.execute(COUNT_TERMS.replace("{add_new_chunks}", ADD_WORDS.format(chunks="new_chunks")))
    for operation, referencing in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER chunks_count_terms_{operation.lower()} AFTER {operation} ON chunks "
            f"{referencing} FOR EACH STATEMENT EXECUTE FUNCTION knowledge_terms_count()"
        )
    op.execute(ADD_WORDS.format(chunks="chunks"))  # the chunks already there


def downgrade() -> None:
    for operation in TRIGGERS:
        op.execute(f"DROP TRIGGER chunks_count_terms_{operation.lower()} ON chunks")
    op.execute("DROP FUNCTION knowledge_terms_count()")
    op.drop_index("ix_knowledge_terms_org_id", table_name="knowledge_terms")
    op.drop_table("knowledge_terms")
