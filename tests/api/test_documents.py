"""Uploads become searchable chunks in the background; bad files get a clear 4xx or a
`failed` status with the reason, and nothing half-indexed stays behind."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from app.db.models import Chunk
from app.services import Services
from tests.api.conftest import Tenant, assert_error
from tests.fixtures import files
from tests.fixtures.kb_corpus import HANDBOOK

pytestmark = pytest.mark.integration

SECTIONS = {
    "Opening hours": "We are open from 8 am to 5 pm on weekdays and 9 am to noon on Saturdays.",
    "Gift vouchers": "Gift vouchers are valid for one year and can be used for any service.",
}


async def upload(
    tenant: Tenant,
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    **form: str,
):  # type: ignore[no-untyped-def]
    return await tenant.client.post(
        "/api/documents/upload", files={"file": (name, data, content_type)}, data=form
    )


async def ingested(tenant: Tenant, services: Services, document_id: str) -> dict:
    await services.knowledge.ingestor.drain()
    return (await tenant.client.get(f"/api/documents/{document_id}")).json()


async def chunk_count(services: Services, document_id: str) -> int:
    async with services.db.system() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(Chunk)
                .where(Chunk.document_id == uuid.UUID(document_id))
            )
            or 0
        )


@pytest.mark.parametrize(
    ("name", "content_type", "data"),
    [
        (
            "hours.txt",
            "text/plain",
            "\n\n".join(f"{h}\n\n{t}" for h, t in SECTIONS.items()).encode(),
        ),
        ("hours.md", "text/markdown", files.markdown(SECTIONS)),
        ("hours.html", "text/html", files.html(SECTIONS)),
        (
            "hours.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            files.docx(SECTIONS),
        ),
        ("hours.pdf", "application/pdf", files.pdf(list(SECTIONS.values()))),
    ],
    ids=["txt", "markdown", "html", "docx", "pdf"],
)
async def test_each_type_is_ingested_and_found(
    org_a: Tenant, services: Services, name: str, content_type: str, data: bytes
) -> None:
    response = await upload(org_a, name, data, content_type)
    assert response.status_code == 202, response.text
    document = response.json()
    assert document["status"] == "queued" and document["size_bytes"] == len(data)
    done = await ingested(org_a, services, document["id"])
    assert done["status"] == "ready", done
    assert done["chunk_count"] >= 1 and done["error"] is None
    found = await org_a.client.post(
        "/api/knowledge/search", json={"query": "When can I use a gift voucher?", "k": 3}
    )
    top = found.json()["items"][0]
    assert "voucher" in top["text"].lower() and top["document_id"] == document["id"]
    assert top["document_name"] == name
    assert "tracking" not in " ".join(i["text"] for i in found.json()["items"])  # no <script>


async def test_unsupported_empty_and_oversize_files(org_a: Tenant, services: Services) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    error = assert_error(
        await upload(org_a, "logo.png", png, "image/png"), 415, "unsupported_media_type"
    )
    assert "PDF" in str(error["message"])
    assert_error(await upload(org_a, "empty.txt", b"", "text/plain"), 422, "invalid_request")
    limit = services.settings.knowledge.max_upload_mb * 1024 * 1024
    error = assert_error(
        await upload(org_a, "huge.txt", b"a " * (limit // 2 + 10), "text/plain"), 413, "too_large"
    )
    assert "MB" in str(error["message"])
    assert (await org_a.client.get("/api/documents")).json()["items"] == []


async def test_corrupt_pdf_fails_with_a_reason_and_leaves_no_chunks(
    org_a: Tenant, services: Services
) -> None:
    broken = files.pdf(["Some text."])[:300]  # the header survives, the rest is gone
    response = await upload(org_a, "broken.pdf", broken, "application/pdf")
    if response.status_code == 202:
        done = await ingested(org_a, services, response.json()["id"])
        assert done["status"] == "failed" and done["error"], done
        assert done["chunk_count"] == 0 and await chunk_count(services, done["id"]) == 0
    else:
        assert_error(response, 422, "invalid_request")


async def test_scanned_pdf_without_text_fails_politely(org_a: Tenant, services: Services) -> None:
    from fpdf import FPDF

    doc = FPDF()
    doc.add_page()
    doc.rect(20, 20, 100, 60)
    response = await upload(org_a, "scan.pdf", bytes(doc.output()), "application/pdf")
    done = await ingested(org_a, services, response.json()["id"])
    assert done["status"] == "failed" and "text" in done["error"].lower(), done


async def test_same_content_twice_is_409(org_a: Tenant, services: Services) -> None:
    data = files.markdown(SECTIONS)
    first = await upload(org_a, "a.md", data, "text/markdown")
    assert first.status_code == 202
    error = assert_error(await upload(org_a, "copy.md", data, "text/markdown"), 409, "conflict")
    assert first.json()["id"] in str(error["message"])


async def test_delete_removes_chunks_and_search_results(org_a: Tenant, services: Services) -> None:
    response = await upload(org_a, "handbook.md", HANDBOOK.encode(), "text/markdown")
    document = await ingested(org_a, services, response.json()["id"])
    assert document["chunk_count"] >= 10
    query = {"query": "VX-4471", "k": 3}
    assert (await org_a.client.post("/api/knowledge/search", json=query)).json()["items"]
    assert (await org_a.client.delete(f"/api/documents/{document['id']}")).status_code == 204
    assert await chunk_count(services, document["id"]) == 0
    assert (await org_a.client.post("/api/knowledge/search", json=query)).json()["items"] == []
    assert_error(await org_a.client.get(f"/api/documents/{document['id']}"), 404, "not_found")


async def test_knowledge_bases_are_separate(org_a: Tenant, services: Services) -> None:
    kb = (await org_a.client.post("/api/knowledge-bases", json={"name": "Products"})).json()
    assert kb["embedding_model"] == services.knowledge.embedder.name and kb["dimension"] == 384
    await upload(
        org_a, "handbook.md", HANDBOOK.encode(), "text/markdown", knowledge_base_id=kb["id"]
    )
    await services.knowledge.ingestor.drain()
    in_kb = await org_a.client.post(
        "/api/knowledge/search", json={"query": "VX-4471", "knowledge_base_id": kb["id"]}
    )
    assert in_kb.json()["items"]
    default = await org_a.client.post("/api/knowledge/search", json={"query": "VX-4471"})
    assert default.json()["items"] == []
    listed = (await org_a.client.get("/api/knowledge-bases")).json()["items"]
    assert {(k["name"], k["documents"]) for k in listed} >= {("Products", 1)}
    assert_error(
        await org_a.client.post("/api/knowledge-bases", json={"name": "Products"}), 409, "conflict"
    )


async def test_cannot_upload_into_another_orgs_knowledge_base(org_a: Tenant, org_b: Tenant) -> None:
    kb = (await org_b.client.post("/api/knowledge-bases", json={"name": "B only"})).json()
    response = await upload(
        org_a, "x.md", b"# Hi\n\nHello there.", "text/markdown", knowledge_base_id=kb["id"]
    )
    assert_error(response, 404, "not_found")


async def _raw_upload(app, headers: list[tuple[bytes, bytes]], chunks: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """POST 1 MB chunks straight into the ASGI app; returns (status, chunks it read)."""
    sent = 0
    status = 0

    preamble = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
    )

    async def receive() -> dict:
        nonlocal sent
        sent += 1
        body = (preamble if sent == 1 else b"") + b"x" * 1024 * 1024
        return {"type": "http.request", "body": body, "more_body": sent < chunks}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/documents/upload",
        "raw_path": b"/api/documents/upload",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
    }
    await app(scope, receive, send)
    return status, sent


async def test_huge_uploads_are_refused_before_they_are_read(app, org_a: Tenant) -> None:  # type: ignore[no-untyped-def]
    auth = (b"authorization", f"Bearer {org_a.key}".encode())
    multipart = (b"content-type", b"multipart/form-data; boundary=xyz")
    # Declared too large: refused without reading a byte of the body.
    status, read = await _raw_upload(
        app, [auth, multipart, (b"content-length", b"999999999999")], 500
    )
    assert status == 413 and read == 0
    # Chunked, no length: reading stops just past the limit (20 MB), not at 500 MB.
    status, read = await _raw_upload(app, [auth, multipart], 500)
    assert status == 413 and read <= 22
