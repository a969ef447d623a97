"""Uploads as an attacker sends them: zip bombs, crowded archives, files that exhaust the parser,
hostile part headers and an organization at its quota. Each is a clear 4xx or a `failed`
document with a reason; the stored file is gone after every failure; another org is unaffected.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import IntegrityError

from app.db.models import KnowledgeBase
from app.services import Services
from app.settings import Settings
from tests.api.conftest import Tenant, assert_error
from tests.fixtures import files, zips

pytestmark = pytest.mark.integration

MB = 1024 * 1024
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SECTIONS = {
    "Opening hours": "We are open from 8 am to 5 pm on weekdays and 9 am to noon on Saturdays.",
    "Gift vouchers": "Gift vouchers are valid for one year and can be used for any service.",
}


@pytest.fixture
def overrides() -> dict[str, Any]:
    """Settings a test changes (by env name, lower case); parametrize it to change them."""
    return {}


@pytest.fixture
def settings(settings: Settings, overrides: dict[str, Any]) -> Settings:
    return settings.replace(**overrides)


def stored_files(services: Services) -> list[Path]:
    root = services.settings.server.velox_data_dir / "documents"
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


async def upload(
    tenant: Tenant, name: str, data: bytes, content_type: str = "application/octet-stream"
) -> httpx.Response:
    return await tenant.client.post(
        "/api/documents/upload", files={"file": (name, data, content_type)}
    )


async def raw_upload(tenant: Tenant, part_headers: bytes, data: bytes) -> httpx.Response:
    """A multipart body written by hand: httpx would escape what an attacker would not."""
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; '
        + part_headers
        + b"\r\n\r\n"
        + data
        + b"\r\n--xyz--\r\n"
    )
    return await tenant.client.post(
        "/api/documents/upload",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )


async def finished(tenant: Tenant, services: Services, document_id: str) -> dict[str, Any]:
    await services.knowledge.ingestor.drain()
    response = await tenant.client.get(f"/api/documents/{document_id}")
    return response.json()  # type: ignore[no-any-return]


async def test_the_issues_docx_bomb_is_refused_at_upload(org_a: Tenant, services: Services) -> None:
    bomb = zips.docx_bomb()
    assert len(bomb) < 128 * 1024
    error = assert_error(await upload(org_a, "policies.docx", bomb, DOCX), 413, "too_large")
    assert "zip bomb" in str(error["message"])
    assert stored_files(services) == []
    assert (await org_a.client.get("/api/documents")).json()["items"] == []


async def test_a_docx_of_too_many_entries_is_refused(org_a: Tenant, services: Services) -> None:
    crowded = zips.docx_with_many_entries(10_001)
    error = assert_error(await upload(org_a, "crowded.docx", crowded, DOCX), 413, "too_large")
    assert "more than 10,000 files" in str(error["message"])
    assert stored_files(services) == []


@pytest.mark.parametrize("overrides", [{"max_unpacked_mb": 1}])
async def test_a_docx_over_the_unpacked_size_is_refused(org_a: Tenant, services: Services) -> None:
    big = zips.docx_incompressible(2 * MB)
    error = assert_error(await upload(org_a, "photos.docx", big, DOCX), 413, "too_large")
    assert "would unpack to 2.0 MB, more than the 1.0 MB allowed" in str(error["message"])
    assert stored_files(services) == []


@pytest.mark.parametrize("overrides", [{"parse_timeout_s": 0.001}])
async def test_a_parse_over_its_time_fails_the_document_not_the_server(
    org_a: Tenant, services: Services
) -> None:
    response = await upload(org_a, "hours.docx", files.docx(SECTIONS), DOCX)
    assert response.status_code == 202, response.text
    done = await finished(org_a, services, response.json()["id"])
    assert done["status"] == "failed" and "longer than 0.001 s" in done["error"], done
    assert stored_files(services) == []
    assert (await org_a.client.get("/api/documents")).status_code == 200


@pytest.mark.parametrize("overrides", [{"parse_memory_mb": 1}])
async def test_a_parse_over_its_memory_fails_the_document_not_the_server(
    org_a: Tenant, services: Services
) -> None:
    response = await upload(org_a, "big.txt", b"words " * (MB // 2), "text/plain")
    assert response.status_code == 202, response.text
    done = await finished(org_a, services, response.json()["id"])
    assert done["status"] == "failed" and "1 MB of memory" in done["error"], done
    assert stored_files(services) == []
    assert (await org_a.client.get("/api/documents")).status_code == 200


async def test_a_file_that_fails_to_parse_is_not_kept(org_a: Tenant, services: Services) -> None:
    liar = zips.docx_lying_about_size()  # its directory passes; reading it does not
    response = await upload(org_a, "liar.docx", liar, DOCX)
    assert response.status_code == 202, response.text
    assert len(stored_files(services)) == 1
    done = await finished(org_a, services, response.json()["id"])
    assert done["status"] == "failed" and "damaged ZIP package" in done["error"], done
    assert stored_files(services) == []


async def test_a_ready_document_keeps_its_file(org_a: Tenant, services: Services) -> None:
    response = await upload(org_a, "hours.md", files.markdown(SECTIONS), "text/markdown")
    done = await finished(org_a, services, response.json()["id"])
    assert done["status"] == "ready", done
    assert [p.name for p in stored_files(services)] == [done["id"]]


async def test_a_database_error_after_storing_removes_the_file(
    org_a: Tenant, services: Services
) -> None:
    # A knowledge base deleted between its lookup and the insert: the insert fails.
    gone = KnowledgeBase(id=uuid.uuid4(), name="gone", embedding_model="x", dimension=384)
    async with services.db.tenant(org_a.org_id) as session:
        with pytest.raises(IntegrityError):
            await services.knowledge.upload(
                session, org_a.org_id, gone, "a.md", "text/markdown", b"# Hi\n\nHello there."
            )
    assert stored_files(services) == []


@pytest.mark.parametrize(
    ("name", "content_type", "data", "recorded"),
    [
        ("hours.md", "application/x-evil", files.markdown(SECTIONS), "text/markdown"),
        ("hours.pdf", "text/plain", files.pdf(list(SECTIONS.values())), "application/pdf"),
        ("hours", "text/html; charset=utf-8; x=" + "y" * 200, files.docx(SECTIONS), DOCX),
        ("notes.txt", "application/octet-stream", b"Plain words here.", "text/plain"),
    ],
    ids=["declared-garbage", "pdf-declared-text", "docx-no-extension", "generic"],
)
async def test_the_detected_type_is_recorded_not_the_clients(
    org_a: Tenant, name: str, content_type: str, data: bytes, recorded: str
) -> None:
    response = await upload(org_a, name, data, content_type)
    assert response.status_code == 202, response.text
    assert response.json()["content_type"] == recorded
    again = await org_a.client.get(f"/api/documents/{response.json()['id']}")
    assert again.json()["content_type"] == recorded


async def test_an_unsupported_type_is_415_listing_what_is_supported(
    org_a: Tenant, services: Services
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    response = await upload(org_a, "logo.pdf", png, "application/pdf")
    error = assert_error(response, 415, "unsupported_media_type")
    for ext in (".pdf", ".docx", ".txt", ".md", ".html"):
        assert ext in str(error["message"])
    assert stored_files(services) == []


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        (b'filename="a.txt"\r\nContent-Type: text/' + b"p" * 300, "Content-Type"),
        (b'filename="a.txt"\r\nContent-Type: text/plain\x01', "Content-Type"),
        (b'filename="' + b"a" * 300 + b'.txt"\r\nContent-Type: text/plain', "filename"),
        (b'filename="a\x00.txt"\r\nContent-Type: text/plain', "filename"),
        (b'filename="a\x1b[31m.txt"\r\nContent-Type: text/plain', "filename"),
    ],
    ids=["long-content-type", "control-content-type", "long-filename", "nul-filename", "escape"],
)
async def test_hostile_part_headers_are_422_not_500(
    org_a: Tenant, services: Services, headers: bytes, field: str
) -> None:
    error = assert_error(await raw_upload(org_a, headers, b"Hello there."), 422, "invalid_request")
    assert field in str(error["message"])
    assert [f["field"] for f in error["fields"]] == ["body.file"]  # type: ignore[attr-defined]
    assert stored_files(services) == []


@pytest.mark.parametrize("overrides", [{"max_documents_per_org": 2}])
async def test_document_count_quota_is_per_org(
    org_a: Tenant, org_b: Tenant, services: Services
) -> None:
    for i in range(2):
        response = await upload(org_a, f"a{i}.txt", f"Note number {i}.".encode(), "text/plain")
        assert response.status_code == 202, response.text
    error = assert_error(
        await upload(org_a, "a2.txt", b"One too many.", "text/plain"), 413, "too_large"
    )
    message = str(error["message"])
    assert message.startswith("storage quota exceeded:") and "2 documents" in message
    assert len(stored_files(services)) == 2
    response = await upload(org_b, "b.txt", b"One too many.", "text/plain")
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("overrides", [{"max_storage_mb_per_org": 1}])
async def test_storage_bytes_quota_is_per_org(
    org_a: Tenant, org_b: Tenant, services: Services
) -> None:
    # 600 KB each, little text: the embedder has almost nothing to do.
    first = await upload(org_a, "a.docx", zips.docx_incompressible(600 * 1024), DOCX)
    assert first.status_code == 202, first.text
    second = zips.docx_incompressible(600 * 1024)
    error = assert_error(await upload(org_a, "b.docx", second, DOCX), 413, "too_large")
    message = str(error["message"])
    assert message.startswith("storage quota exceeded:") and "1.0 MB limit" in message
    assert len(stored_files(services)) == 1
    response = await upload(org_b, "b.docx", second, DOCX)
    assert response.status_code == 202, response.text
    # Deleting frees the room again.
    await services.knowledge.ingestor.drain()
    assert (await org_a.client.delete(f"/api/documents/{first.json()['id']}")).status_code == 204
    again = await upload(org_a, "b.docx", second, DOCX)
    assert again.status_code == 202, again.text
