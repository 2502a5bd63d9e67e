"""The OpenAPI document says what the API does: a valid OpenAPI 3.1 document, closed request
bodies, the real constraints of amounts, instants and cursors, every status an operation answers
as a problem document, ``Allow`` naming every method of a path, and examples of every request
and success response that fit their schemas. (``test_openapi_fuzz`` checks the same at large.)"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from handlers.accounts.web.schemas import AMOUNT_PATTERN
from tests.e2e.conftest import Api, problem

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture
async def spec(api: Api) -> dict[str, Any]:
    return dict((await api.call("GET", "/schema/openapi.json", None)).json())


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(spec["components"]["schemas"][name])


def _parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(next(p for p in operation["parameters"] if p["name"] == name)["schema"])


async def test_request_bodies_are_closed_and_the_api_refuses_unknown_fields(
    api: Api, spec: dict[str, Any]
) -> None:
    account = (await api.open(deposit="10.00"))["id"]
    other = (await api.open())["id"]
    bodies = {
        ("/accounts", "post"): {"currency": "EUR"},
        ("/accounts/{account_id}/deposits", "post"): {"amount": "1.00"},
        ("/accounts/{account_id}/withdrawals", "post"): {"amount": "1.00"},
        ("/transfers", "post"): {"source": account, "destination": other, "amount": "1.00"},
    }
    with_body = {(p, m) for p, m, op in _operations(spec) if "requestBody" in op}
    assert with_body == set(bodies)
    for (path, method), body in bodies.items():
        operation = spec["paths"][path][method]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert _schema(spec, ref.rsplit("/", 1)[1])["additionalProperties"] is False
        url = path.format(account_id=account)
        refused = problem(
            await api.call("POST", url, json={**body, "extra": 1}), 422, "validation-error"
        )
        assert refused["field"] == "extra"
    assert (await api.account(account)).json()["balance"] == "10.00"


def test_amounts_instants_and_cursors_have_their_real_constraints(spec: dict[str, Any]) -> None:
    for name, field in (("MovementIn", "amount"), ("TransferIn", "amount")):
        amount = _schema(spec, name)["properties"][field]
        assert (amount["type"], amount["pattern"]) == ("string", AMOUNT_PATTERN)
    for name, field in (("AccountOut", "balance"), ("MovementOut", "amount")):
        assert _schema(spec, name)["properties"][field]["pattern"] == AMOUNT_PATTERN
    assert _schema(spec, "OpenAccountIn")["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"
    statement = spec["paths"]["/accounts/{account_id}/transactions"]["get"]
    balance = spec["paths"]["/accounts/{account_id}/balance"]["get"]
    for operation, name in ((statement, "from"), (statement, "to"), (balance, "at")):
        assert _parameter(operation, name)["format"] == "date-time"
    for operation in (statement, spec["paths"]["/accounts"]["get"]):
        assert _parameter(operation, "cursor")["pattern"] == "^[A-Za-z0-9_-]+$"


@pytest.mark.parametrize("amount", ["1", "1.5", "0.01", "-1.00", "10000000000000.00", "007"])
def test_the_amount_pattern_takes_plain_decimals(amount: str) -> None:
    assert re.fullmatch(AMOUNT_PATTERN, amount)


@pytest.mark.parametrize("amount", ["1e3", "1_000", "١٢", " 1", "1.", ".5", "+1", "1,5", ""])
def test_the_amount_pattern_refuses_anything_else(amount: str) -> None:
    assert not re.fullmatch(AMOUNT_PATTERN, amount)


async def test_the_cursors_the_api_issues_fit_the_documented_pattern(
    api: Api, spec: dict[str, Any]
) -> None:
    account = (await api.open(deposit="1.00"))["id"]
    await api.open()
    for _ in range(2):
        assert (await api.move("deposits", account, "1.00")).status_code == 201
    pattern = _parameter(spec["paths"]["/accounts"]["get"], "cursor")["pattern"]
    for page in (
        await api.call("GET", "/accounts?limit=1"),
        await api.call("GET", f"/accounts/{account}/transactions?limit=1&min_version=3"),
    ):
        cursor = page.json()["next_cursor"]
        assert re.fullmatch(pattern, cursor), cursor
    refused = problem(await api.call("GET", "/accounts?cursor=not%20one"), 422, "validation-error")
    assert refused["field"] == "cursor"


def test_every_error_an_operation_answers_is_documented_as_a_problem(
    spec: dict[str, Any],
) -> None:
    for path, method, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if status.startswith("2") or path == "/health/ready":
                continue
            content = response["content"]
            assert list(content) == ["application/problem+json"], (path, method, status)
            schema = content["application/problem+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}, (path, method, status)


async def test_statuses_the_fuzzer_found_undocumented_are_documented(
    api: Api, spec: dict[str, Any]
) -> None:
    found = [
        ("/transfers/{transfer_id}", "/transfers/x?min_version=-1", 422, "validation-error"),
        ("/problems/{slug}", "/problems/0", 404, "not-found"),
    ]
    for template, url, status, slug in found:
        problem(await api.call("GET", url), status, slug)
        assert str(status) in spec["paths"][template]["get"]["responses"]


async def test_options_allow_every_method_of_the_path(api: Api, spec: dict[str, Any]) -> None:
    for template, item in spec["paths"].items():
        path = template.format(account_id="a", transfer_id="t", slug="not-found")
        response = await api.call("OPTIONS", path, None)
        assert response.status_code == 204, path
        documented = {method.upper() for method in item if method in METHODS}
        assert set(response.headers["allow"].split(", ")) == documented | {"OPTIONS"}, path


# ---- validity, and examples ----

DOCUMENT = "urn:openapi-document"
# Checks every format the schemas use: date-time needs rfc3339-validator (installed with
# openapi-spec-validator), without which jsonschema would skip it silently.
FORMATS = FormatChecker()


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in OpenAPIV31SpecValidator(spec).iter_errors()
    ]
    assert errors == []


def test_every_request_and_success_response_has_an_example(spec: dict[str, Any]) -> None:
    without = []
    for path, method, operation in _operations(spec):
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        # a 204 has no body to give an example of
        bodies = [r["content"] for s, r in successes.items() if s != "204"]
        if "requestBody" in operation:
            bodies.append(operation["requestBody"]["content"])
        for body in bodies:
            without += [
                (method, path, type_) for type_, media in body.items() if not media.get("examples")
            ]
        if set(successes) == {"204"}:
            assert "content" not in successes["204"], (method, path)
    assert without == []


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def _examples(spec: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(where, JSON pointer of the schema, example) for every example in the document: of the
    media types of requests and responses, of response headers, and of the schemas."""
    for path, method, operation in _operations(spec):
        at = ("paths", path, method)
        media: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        if "requestBody" in operation:
            media += [
                ((*at, "requestBody", "content", type_), body)
                for type_, body in operation["requestBody"]["content"].items()
            ]
        for status, response in operation["responses"].items():
            media += [
                ((*at, "responses", status, "content", type_), body)
                for type_, body in (response.get("content") or {}).items()
            ]
            for name, header in (response.get("headers") or {}).items():
                if "example" in header:
                    where = (*at, "responses", status, "headers", name, "schema")
                    yield "/".join(where), _pointer(*where), header["example"]
        for where, body in media:
            for name, example in (body.get("examples") or {}).items():
                yield f"{'/'.join(where)} {name}", _pointer(*where, "schema"), example["value"]
    yield from _schema_examples(spec["components"]["schemas"], ("components", "schemas"))


def _schema_examples(
    schemas: dict[str, Any], at: tuple[str, ...]
) -> Iterator[tuple[str, str, Any]]:
    for key, schema in schemas.items():
        where = (*at, key)
        for value in schema.get("examples", []):
            yield "/".join(where), _pointer(*where), value
        yield from _schema_examples(schema.get("properties", {}), (*where, "properties"))
        for keyword in ("oneOf", "anyOf", "allOf"):
            branches = dict(enumerate(schema.get(keyword, [])))
            yield from _schema_examples({str(i): s for i, s in branches.items()}, (*where, keyword))
        if isinstance(schema.get("items"), dict):
            yield from _schema_examples({"items": schema["items"]}, where)


def _misfits(spec: dict[str, Any]) -> list[str]:
    """Each example that breaks its schema, with the document's references resolved."""
    registry = Registry().with_resource(DOCUMENT, Resource(spec, DRAFT202012))
    misfits = []
    for where, pointer, value in _examples(spec):
        schema = {"$ref": f"{DOCUMENT}#/{pointer}"}
        validator = Draft202012Validator(schema, registry=registry, format_checker=FORMATS)
        misfits += [f"{where}: {error.message}" for error in validator.iter_errors(value)]
    return misfits


def test_every_example_fits_its_schema(spec: dict[str, Any]) -> None:
    assert "date-time" in FORMATS.checkers
    where = {place.split(" ")[0] for place, _, _ in _examples(spec)}
    assert "paths//accounts/post/requestBody/content/application/json" in where
    assert "paths//accounts/post/responses/201/headers/ETag/schema" in where
    assert "components/schemas/MovementIn/properties/amount" in where
    assert _misfits(spec) == []


@pytest.mark.parametrize(
    ("pointer", "value"),
    [
        # a number where the schema wants a decimal string
        (("/accounts/{account_id}/deposits", "post", "responses", "201", "amount"), 25.0),
        # an instant without its offset
        (("/transfers", "post", "responses", "202", "requested_at"), "2026-03-02T09:20:45"),
        # a member the request body does not take
        (("/transfers", "post", "requestBody", None, "currency"), "EUR"),
    ],
)
def test_an_example_that_drifts_from_its_schema_is_caught(
    spec: dict[str, Any], pointer: tuple[Any, ...], value: Any
) -> None:
    path, method, part, status, member = pointer
    drifted = copy.deepcopy(spec)
    operation = drifted["paths"][path][method]
    body = operation[part] if status is None else operation[part][status]
    example = next(iter(body["content"]["application/json"]["examples"].values()))
    example["value"][member] = value
    assert _misfits(spec) == []
    misfits = _misfits(drifted)
    assert len(misfits) == 1
    assert misfits[0].startswith("/".join(("paths", path, method, part))), misfits
