"""Word counts per knowledge base (BM25's document frequency), kept by triggers on `chunks`:
every way chunks come and go counts, and each organization sees only its own."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.database import Database, is_retryable
from app.db.models import Chunk, Document, KnowledgeBase, KnowledgeTerm, Organization
from tests.db.conftest import new_org

pytestmark = pytest.mark.integration


async def new_kb(db: Database, org: uuid.UUID, name: str = "Help") -> uuid.UUID:
    async with db.tenant(org) as session:
        kb = KnowledgeBase(name=name, embedding_model="test", dimension=3)
        session.add(kb)
        await session.commit()
        return kb.id


async def add_document(db: Database, org: uuid.UUID, kb: uuid.UUID, *texts: str) -> uuid.UUID:
    async with db.tenant(org) as session:
        doc = Document(
            knowledge_base_id=kb,
            filename="faq.txt",
            content_type="text/plain",
            size_bytes=1,
            sha256=uuid.uuid4().hex,
            status="ready",
            chunk_count=len(texts),
        )
        session.add(doc)
        await session.flush()
        session.add_all(
            Chunk(
                document_id=doc.id,
                knowledge_base_id=kb,
                position=i,
                text=t,
                token_count=len(t.split()),
                dimension=3,
                embedding=[1.0, 0.0, 0.0],
            )
            for i, t in enumerate(texts)
        )
        await session.commit()
        return doc.id


async def counts(db: Database, org: uuid.UUID, kb: uuid.UUID) -> dict[str, int]:
    async with db.tenant(org) as session:
        rows = await session.execute(
            select(KnowledgeTerm.lexeme, KnowledgeTerm.chunks).where(
                KnowledgeTerm.knowledge_base_id == kb, KnowledgeTerm.chunks > 0
            )
        )
        return {lexeme: n for lexeme, n in rows}


async def test_words_are_counted_as_chunks_come_and_go(db: Database) -> None:
    org = await new_org(db)
    kb = await new_kb(db, org)
    first = await add_document(db, org, kb, "Refunds take five days.", "Refunds need a receipt.")
    await add_document(db, org, kb, "Deliveries take five days.")
    # Stemmed lexemes, one count per chunk that holds the word.
    assert await counts(db, org, kb) == {
        "refund": 2, "take": 2, "five": 2, "day": 2, "need": 1, "receipt": 1, "deliveri": 1
    }  # fmt: skip

    async with db.tenant(org) as session:
        await session.execute(
            update(Chunk)
            .where(Chunk.document_id == first, Chunk.position == 1)
            .values(text="Exchanges need a receipt.")
        )
        await session.commit()
    assert (await counts(db, org, kb))["refund"] == 1
    assert (await counts(db, org, kb))["exchang"] == 1

    # Deleting the document cascades to its chunks, and their words are uncounted.
    async with db.tenant(org) as session:
        await session.execute(delete(Document).where(Document.id == first))
        await session.commit()
    assert await counts(db, org, kb) == {"deliveri": 1, "take": 1, "five": 1, "day": 1}

    async with db.tenant(org) as session:
        await session.execute(delete(KnowledgeBase).where(KnowledgeBase.id == kb))
        await session.commit()
    async with db.system() as session:
        left = await session.scalars(
            select(KnowledgeTerm.lexeme).where(KnowledgeTerm.knowledge_base_id == kb)
        )
        assert left.all() == []


async def test_each_knowledge_base_and_org_counts_its_own(db: Database) -> None:
    a, b = await new_org(db, "A"), await new_org(db, "B")
    kb_a, kb_a2, kb_b = await new_kb(db, a), await new_kb(db, a, "Other"), await new_kb(db, b)
    await add_document(db, a, kb_a, "Warranty covers parts.")
    await add_document(db, a, kb_a2, "Warranty covers labour.")
    await add_document(db, b, kb_b, "Warranty covers parts.", "Warranty is two years.")
    assert (await counts(db, a, kb_a))["warranti"] == 1
    assert (await counts(db, b, kb_b))["warranti"] == 2
    # Org B asking about org A's knowledge base sees nothing of it.
    assert await counts(db, b, kb_a) == {}


async def test_a_deadlock_is_told_apart_from_other_errors(db: Database) -> None:
    # Ingestion runs its write again when Postgres aborts it to break a deadlock (two
    # ingestions, or an ingestion and a deletion, counting the same words); a real deadlock
    # here, made with two organizations' rows locked in opposite orders.
    a, b = await new_org(db, "A"), await new_org(db, "B")
    async with db.system() as first, db.system() as second:

        async def rename(session: AsyncSession, org: uuid.UUID) -> None:
            await session.execute(
                update(Organization).where(Organization.id == org).values(name="x")
            )

        await rename(first, a)
        await rename(second, b)
        outcomes = await asyncio.gather(rename(first, b), rename(second, a), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(errors) == 1 and is_retryable(errors[0]), outcomes
        await first.rollback()
        await second.rollback()

    async with db.system() as session:
        session.add(Organization(id=a, name="again"))
        with pytest.raises(IntegrityError) as duplicate:
            await session.flush()
    assert not is_retryable(duplicate.value)


async def test_a_deletion_locks_the_counts_in_key_order(postgres_url: str) -> None:
    # An ingestion upserts the counts in (knowledge_base_id, lexeme) order; a deletion must lock
    # them in that order too, or the two deadlock on shared words (migration 0005). Seen from
    # outside: a deletion that waits for one word's row holds every row before it, none after.
    db = Database(postgres_url, pool_size=3)
    try:
        org = await new_org(db)
        kb = await new_kb(db, org)
        words = sorted(f"{a}{b}{c}zz" for a in "bdfhk" for b in "aeiou" for c in "lmnprst")
        # The later half is counted first, so the table's rows are not stored in key order:
        # a statement that locks them as it scans them takes the later words first.
        half = len(words) // 2
        docs = [await add_document(db, org, kb, " ".join(w)) for w in (words[half:], words[:half])]
        lexemes = sorted(await counts(db, org, kb))
        held = lexemes[len(lexemes) // 2]

        def term(lexeme: str) -> Any:
            return select(KnowledgeTerm.chunks).where(
                KnowledgeTerm.knowledge_base_id == kb, KnowledgeTerm.lexeme == lexeme
            )

        async with db.system() as holder, db.system() as deleter, db.system() as prober:
            await holder.execute(term(held).with_for_update())
            pid = (await deleter.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await deleter.execute(text("SET LOCAL lock_timeout = '20s'"))  # fail, never hang
            deletion = asyncio.create_task(
                deleter.execute(delete(Chunk).where(Chunk.document_id.in_(docs)))
            )
            locked = set()
            try:
                waiting = text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
                for _ in range(200):
                    if (await prober.execute(waiting, {"pid": pid})).scalar_one() == "Lock":
                        break
                    await asyncio.sleep(0.02)
                else:
                    raise AssertionError("the deletion never waited for the held word")
                for lexeme in lexemes:
                    if lexeme == held:
                        continue
                    try:
                        async with prober.begin_nested():
                            await prober.execute(term(lexeme).with_for_update(nowait=True))
                    except DBAPIError as exc:
                        assert getattr(exc.orig, "sqlstate", None) == "55P03", exc
                        locked.add(lexeme)
            finally:  # let the deletion finish whatever happened
                await prober.rollback()
                await holder.rollback()
                await deletion
            assert locked == {lexeme for lexeme in lexemes if lexeme < held}
            await deleter.commit()
        assert await counts(db, org, kb) == {}
    finally:
        await db.close()
