"""``core.http.examples``: examples beside the schema, kept as given, and refused where the
operation has no body to show."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar import Litestar, get, post
from litestar.params import JSONBody
from litestar.testing import TestClient

from core.http.examples import documented_header, example, with_examples


class Thing(msgspec.Struct, frozen=True):
    name: str
    gone_at: str | None


_THING = {"name": "one", "gone_at": None}


def _document(*handlers: Any) -> dict[str, Any]:
    with TestClient(Litestar(list(handlers))) as client:
        response = client.get("/schema/openapi.json")
        assert response.status_code == 200, response.text
        return dict(response.json())


def test_examples_go_beside_the_schema_with_their_null_members() -> None:
    @post(
        "/things",
        operation_class=with_examples(
            request=example("A thing", _THING), responses={201: example("Made", _THING)}
        ),
    )
    async def make(data: JSONBody[Thing]) -> Thing:
        return data

    operation = _document(make)["paths"]["/things"]["post"]
    request = operation["requestBody"]["content"]["application/json"]
    response = operation["responses"]["201"]["content"]["application/json"]
    for media in (request, response):
        assert media["schema"] == {"$ref": "#/components/schemas/Thing"}
    assert request["examples"] == {"a-thing": {"summary": "A thing", "value": _THING}}
    assert response["examples"]["made"]["value"] == _THING


def test_examples_of_a_status_without_a_body_are_refused() -> None:
    @get("/things", operation_class=with_examples(responses={404: example("None", _THING)}))
    async def things() -> list[Thing]:
        return []

    with pytest.raises(ValueError, match="response 404 has no body"):
        Litestar([things]).openapi_schema  # noqa: B018


def test_a_documented_header_has_a_schema_and_an_example_and_is_not_sent() -> None:
    @get("/thing", response_headers=[documented_header("ETag", "The version", '"3"')])
    async def thing() -> Thing:
        return Thing("one", None)

    headers = _document(thing)["paths"]["/thing"]["get"]["responses"]["200"]["headers"]
    assert headers["ETag"]["schema"] == {"type": "string"}
    assert headers["ETag"]["example"] == '"3"'
    with TestClient(Litestar([thing])) as client:
        assert "etag" not in client.get("/thing").headers
