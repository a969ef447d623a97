"""Reading back what the server recorded for a call, for assertions."""

from __future__ import annotations

from sqlalchemy import select

from app.db.database import Database
from app.db.models import Conversation, Message


async def load_call(db: Database, call_sid: str) -> tuple[Conversation | None, list[Message]]:
    """The conversation for `call_sid` (None if there is none yet) and its messages in order."""
    async with db.system() as session:
        convo = await session.scalar(select(Conversation).where(Conversation.call_sid == call_sid))
        if convo is None:
            return None, []
        rows = await session.scalars(
            select(Message)
            .where(Message.org_id == convo.org_id, Message.conversation_id == convo.id)
            .order_by(Message.seq)
        )
        return convo, list(rows)
