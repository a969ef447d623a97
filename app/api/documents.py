"""`/api/documents`: upload files into a knowledge base, watch their ingestion, delete them.

An upload is refused at once (4xx) when it cannot be ingested safely: too large, a type Velox
does not read (415, listing those it does), a DOCX that would expand too far (413), over the
organization's storage quota (413 "storage quota exceeded: …"), or a file part whose name or
Content-Type is over-long or holds control characters (422). The type recorded is the one
found in the bytes, not the client's Content-Type.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Final, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Response, UploadFile
from fastapi import status as http
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from app.api.crud import no_content
from app.api.deps import CurrentPrincipal, KnowledgeDep, SettingsDep, TenantSession, get_or_404
from app.api.errors import FieldValidationError, responses
from app.api.knowledge import resolve_knowledge_base
from app.api.limits import BodyTooLarge
from app.db.models import Document
from app.rag.parsing import ParseError, UnsafeArchive, UnsupportedType
from app.rag.service import DuplicateDocument, QuotaExceeded

router = APIRouter(prefix="/api/documents", tags=["knowledge base"], responses=responses(401, 422))

Status = Literal["queued", "processing", "ready", "failed"]

MAX_PART_HEADER: Final = 255
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


class DocumentOut(BaseModel):
    """A document and where its ingestion stands (`error` says why it failed)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    knowledge_base_id: uuid.UUID
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    status: str
    error: str | None
    title: str | None
    chunk_count: int
    created_at: datetime
    updated_at: datetime


class DocumentList(BaseModel):
    """Newest first."""

    items: list[DocumentOut]


@router.post(
    "/upload",
    status_code=http.HTTP_202_ACCEPTED,
    summary="Upload a document",
    responses=responses(404, 409, 413, 415),
)
async def upload(
    settings: SettingsDep,
    service: KnowledgeDep,
    principal: CurrentPrincipal,
    session: TenantSession,
    file: Annotated[UploadFile, File(description="PDF, DOCX, TXT, Markdown or HTML")],
    knowledge_base_id: Annotated[uuid.UUID | None, Form()] = None,
) -> DocumentOut:
    """Store the file and ingest it in the background; poll `GET /api/documents/{id}`."""
    _check_part_header("filename", file.filename)
    _check_part_header("Content-Type", file.content_type)
    # UploadSizeLimit has already refused bodies far over the limit; this is the exact check.
    limit = settings.knowledge.max_upload_mb * 1024 * 1024
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge(settings.knowledge.max_upload_mb)
    if not data:
        raise HTTPException(422, f"{file.filename or 'the file'} is empty")
    kb = await resolve_knowledge_base(session, service, knowledge_base_id)
    try:
        document = await service.upload(
            session, principal.org_id, kb, file.filename or "upload", file.content_type, data
        )
    except UnsupportedType as exc:
        raise HTTPException(415, str(exc)) from exc
    except (UnsafeArchive, QuotaExceeded) as exc:
        raise HTTPException(413, str(exc)) from exc
    except ParseError as exc:
        raise HTTPException(422, str(exc)) from exc
    except DuplicateDocument as exc:
        raise HTTPException(409, str(exc)) from exc
    return DocumentOut.model_validate(document)


def _check_part_header(name: str, value: str | None) -> None:
    """The file part's own headers: the database and the logs get only sane strings."""
    if value is None:
        return
    if len(value) > MAX_PART_HEADER:
        raise FieldValidationError(
            "body.file",
            f"the file's {name} is {len(value)} characters long, more than the "
            f"{MAX_PART_HEADER} allowed",
        )
    if _CONTROL.search(value):
        raise FieldValidationError(
            "body.file", f"the file's {name} contains control characters (such as NUL)"
        )


@router.get("", summary="List documents")
async def list_documents(
    session: TenantSession,
    knowledge_base_id: uuid.UUID | None = None,
    status: Annotated[Status | None, Query()] = None,
) -> DocumentList:
    """The organization's documents with their ingestion status."""
    query = select(Document).order_by(Document.created_at.desc(), Document.id)
    if knowledge_base_id is not None:
        query = query.where(Document.knowledge_base_id == knowledge_base_id)
    if status is not None:
        query = query.where(Document.status == status)
    rows = await session.scalars(query)
    return DocumentList(items=[DocumentOut.model_validate(d) for d in rows])


@router.get("/{document_id}", summary="Get a document", responses=responses(404))
async def get_document(document_id: uuid.UUID, session: TenantSession) -> DocumentOut:
    """One document and its ingestion status."""
    return DocumentOut.model_validate(await get_or_404(session, Document, document_id, "document"))


@router.delete(
    "/{document_id}",
    status_code=http.HTTP_204_NO_CONTENT,
    summary="Delete a document",
    responses=responses(404),
)
async def delete_document(
    document_id: uuid.UUID, session: TenantSession, service: KnowledgeDep
) -> Response:
    """The document, its chunks and its stored file are gone; searches stop finding it."""
    document = await get_or_404(session, Document, document_id, "document")
    await service.delete(session, document)
    return no_content()
