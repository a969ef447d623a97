"""word counts are decremented in key order, as they are incremented

Revision ID: 0005
Revises: 0004

0004's decrement (UPDATE ... FROM the deleted chunks' words) locked the counts in whatever order
its join produced, while an ingestion's upsert locks them in (knowledge_base_id, lexeme) order:
a document deleted while another was ingested into the same knowledge base could deadlock on
two shared words, and the deletion (an API request, not retried) then failed. Locking first, in
key order, makes every statement that touches the counts take its locks in the same order.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ADD_WORDS = """
        INSERT INTO knowledge_terms AS k (knowledge_base_id, lexeme, org_id, chunks)
        SELECT c.knowledge_base_id, w.lexeme, c.org_id, count(*)
        FROM new_chunks AS c, unnest(tsvector_to_array(c.tsv)) AS w(lexeme)
        GROUP BY 1, 2, 3
        ORDER BY 1, 2
        ON CONFLICT (knowledge_base_id, lexeme) DO UPDATE SET chunks = k.chunks + excluded.chunks;
"""
SUBTRACT_WORDS = {
    "0004": """
        UPDATE knowledge_terms AS k SET chunks = k.chunks - gone.n
        FROM (
            SELECT c.knowledge_base_id, w.lexeme, count(*) AS n
            FROM old_chunks AS c, unnest(tsvector_to_array(c.tsv)) AS w(lexeme)
            GROUP BY 1, 2
        ) AS gone
        WHERE k.knowledge_base_id = gone.knowledge_base_id AND k.lexeme = gone.lexeme;
""",
    # The rows are locked as the sorted scan returns them (FOR UPDATE sits above the sort), so
    # a statement waiting for one row holds every row before it and none after.
    "0005": """
        WITH gone AS MATERIALIZED (
            SELECT k.knowledge_base_id, k.lexeme, counted.n
            FROM knowledge_terms AS k
            JOIN (
                SELECT c.knowledge_base_id, w.lexeme, count(*) AS n
                FROM old_chunks AS c, unnest(tsvector_to_array(c.tsv)) AS w(lexeme)
                GROUP BY 1, 2
            ) AS counted USING (knowledge_base_id, lexeme)
            ORDER BY k.knowledge_base_id, k.lexeme
            FOR UPDATE OF k
        )
        UPDATE knowledge_terms AS k SET chunks = k.chunks - gone.n
        FROM gone
        WHERE k.knowledge_base_id = gone.knowledge_base_id AND k.lexeme = gone.lexeme;
""",
}
COUNT_TERMS = """
CREATE OR REPLACE FUNCTION knowledge_terms_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN{subtract}
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN{add}
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(COUNT_TERMS.format(subtract=SUBTRACT_WORDS["0005"], add=ADD_WORDS))


def downgrade() -> None:
    op.execute(COUNT_TERMS.format(subtract=SUBTRACT_WORDS["0004"], add=ADD_WORDS))
