"""`/openapi.json` describes every route with the errors it can return."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


async def test_every_api_route_documents_its_errors(anonymous: httpx.AsyncClient) -> None:
    spec = (await anonymous.get("/openapi.json")).json()
    assert "ErrorResponse" in spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            assert operation.get("security") == [{"HTTPBearer": []}], where
            codes = set(operation["responses"])
            assert "401" in codes, where
            if "{" in path:
                assert {"404", "422"} <= codes, where
            if method in ("post", "put", "patch"):
                assert "422" in codes, where
            for code in {c for c in codes if c.startswith(("4", "5"))}:
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (where, code)
