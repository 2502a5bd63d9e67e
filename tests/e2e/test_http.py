"""The HTTP envelope: body size, content type and malformed JSON as problems; request ids as
correlation ids; health, metrics, OpenAPI; plugin routes; no internals in a 500."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST

from core.diagnostics import Report, Sample
from core.hookspecs import hookimpl
from core.mediator import Mediator
from core.ports import EventStore, Principal
from handlers.accounts.messages import ListAccounts
from tests.e2e.conftest import Api, AppFactory, problem


async def test_oversized_body_is_413(api: Api) -> None:
    account = (await api.open())["id"]
    body = {"amount": "1.00", "description": "x" * (70 * 1024)}
    response = await api.call("POST", f"/accounts/{account}/deposits", json=body)
    problem(response, 413, "body-too-large")


async def test_body_limit_is_configurable(make_api: AppFactory) -> None:
    async with make_api(values={"max_body_bytes": "100"}) as api:
        response = await api.call("POST", "/accounts", json={"currency": "EUR", "owner": "x" * 90})
        problem(response, 413, "body-too-large")


async def test_wrong_content_type_is_415(api: Api) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        response = await api.call(
            "POST",
            "/accounts",
            content=b'{"currency": "EUR"}',
            headers={"content-type": content_type},
        )
        problem(response, 415, "unsupported-media-type")
    no_type = await api.call("POST", "/accounts", content=b'{"currency": "EUR"}')
    problem(no_type, 415, "unsupported-media-type")
    with_charset = await api.call(
        "POST",
        "/accounts",
        content=b'{"currency": "EUR"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert with_charset.status_code == 201


async def test_malformed_json_is_400(api: Api) -> None:
    for raw in (b'{"currency": ', b"{currency: EUR}", b"\xff\xfe", b'{"currency": "EUR"} x'):
        response = await api.call(
            "POST", "/accounts", content=raw, headers={"content-type": "application/json"}
        )
        problem(response, 400, "malformed-json")


async def test_wrong_shapes_are_422(api: Api) -> None:
    for body in ([], "EUR", 5, {"currency": 5}, {"currency": None}):
        response = await api.call("POST", "/accounts", json=body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"]
    empty = await api.call(
        "POST", "/accounts", content=b"", headers={"content-type": "application/json"}
    )
    assert empty.status_code in {400, 422}
    assert empty.headers["content-type"].startswith("application/problem+json")


async def test_unknown_path_and_method_are_problems(api: Api) -> None:
    problem(await api.call("GET", "/nowhere"), 404, "not-found")
    response = await api.call("PUT", "/accounts")
    problem(response, 405, "method-not-allowed")
    assert "allow" in response.headers


async def test_request_id_is_echoed_or_generated(api: Api) -> None:
    given = await api.call("GET", "/accounts", headers={"X-Request-ID": "req-abc-123"})
    assert given.headers["x-request-id"] == "req-abc-123"
    generated = await api.call("GET", "/accounts")
    assert len(generated.headers["x-request-id"]) == 32
    hostile = await api.call("GET", "/accounts", headers={"X-Request-ID": "a b\tc" + "x" * 200})
    assert hostile.headers["x-request-id"] != "a b\tc" + "x" * 200
    failed = await api.call("GET", "/accounts/nope", headers={"X-Request-ID": "req-404"})
    assert failed.headers["x-request-id"] == "req-404"
    assert failed.json()["request_id"] == "req-404"
    unrouted = await api.call("GET", "/nowhere")
    assert unrouted.json()["request_id"] == unrouted.headers["x-request-id"]


async def test_request_id_is_the_events_correlation_id(api: Api) -> None:
    opened = await api.call(
        "POST", "/accounts", json={"currency": "EUR"}, headers={"X-Request-ID": "corr-1"}
    )
    account = opened.json()["id"]
    await api.move("deposits", account, "1.00", headers={"X-Request-ID": "corr-2"})
    store = api.application.container.resolve(EventStore)  # type: ignore[type-abstract]
    records = await store.read(f"account-{account}")
    assert [r.metadata.correlation_id for r in records] == ["corr-1", "corr-2"]
    assert [r.metadata.actor for r in records] == ["alice", "alice"]


async def test_health(api: Api) -> None:
    live = await api.call("GET", "/health/live", None)
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = await api.call("GET", "/health/ready", None)
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"event_store": True, "read_model": True, "authenticator": True},
    }


async def test_ready_is_503_when_a_backend_is_not(api: Api) -> None:
    class Down:
        async def start(self) -> None: ...

        async def close(self) -> None: ...

        async def ready(self) -> bool:
            raise ConnectionError("no route to host")

    api.application.backends["read_model"] = Down()
    response = await api.call("GET", "/health/ready", None)
    assert response.status_code == 503
    assert response.json()["checks"]["read_model"] is False


async def test_metrics_in_prometheus_format(api: Api) -> None:
    account = (await api.open())["id"]
    await api.account(account)
    response = await api.call("GET", "/metrics", None)
    assert response.status_code == 200
    content_type = response.headers["content-type"]
    assert content_type.startswith("text/plain")
    assert content_type.count("charset") == 1, content_type
    assert content_type == CONTENT_TYPE_LATEST
    text = response.text
    assert 'balance_http_requests_total{method="POST",route="/accounts",status="201"} 1.0' in text
    assert 'route="/accounts/{account_id}"' in text
    assert "balance_http_request_duration_seconds_bucket" in text
    assert "balance_projection_events_total" in text
    assert "process_" in text or "python_info" in text


async def test_ready_and_metrics_show_what_a_backend_reports_about_itself(api: Api) -> None:
    class Reporter:
        async def start(self) -> None: ...

        async def close(self) -> None: ...

        async def ready(self) -> bool:
            return True

        def report(self) -> Report:
            samples = [
                Sample("widgets", "Widgets in stock", 3, labels={"colour": "blue"}),
                Sample("turns", "Turns taken", 2, kind="counter"),
            ]
            return Report({"owner": "here"}, samples, partitions={1: True, 0: False})

    api.application.backends["read_model"] = Reporter()
    ready = await api.call("GET", "/health/ready", None)
    assert ready.status_code == 200
    assert ready.json()["details"] == {"read_model": {"owner": "here"}}
    assert ready.json()["partitions"] == {"0": {"caught_up": False}, "1": {"caught_up": True}}
    text = (await api.call("GET", "/metrics", None)).text
    assert 'balance_widgets{colour="blue"} 3.0' in text
    assert "balance_turns_total 2.0" in text


async def test_openapi_documents_bearer_auth_and_every_error(api: Api) -> None:
    ui = await api.call("GET", "/schema", None)
    assert ui.status_code == 200
    assert ui.headers["content-type"].startswith("text/html")
    spec = (await api.call("GET", "/schema/openapi.json", None)).json()
    scheme = spec["components"]["securitySchemes"]["BearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    operations = [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if path.startswith(("/accounts", "/transfers"))
    ]
    assert len(operations) == 11
    for path, method, operation in operations:
        assert operation["security"] == [{"BearerAuth": []}], (path, method)
        responses = operation["responses"]
        for status in ("401", "403", "500"):
            assert status in responses, (path, method, status)
            assert "application/problem+json" in responses[status]["content"]
    open_account = spec["paths"]["/accounts"]["post"]
    assert {"400", "413", "415", "422"} <= set(open_account["responses"])
    assert "requestBody" in open_account
    deposit = spec["paths"]["/accounts/{account_id}/deposits"]["post"]
    assert {"404", "409", "412", "422"} <= set(deposit["responses"])
    statement = spec["paths"]["/accounts/{account_id}/transactions"]["get"]
    assert {p["name"] for p in statement["parameters"]} >= {"from", "to", "cursor", "limit"}
    feed = spec["paths"]["/accounts/{account_id}/events"]["get"]
    assert {"404", "429"} <= set(feed["responses"])
    assert "text/event-stream" in feed["responses"]["200"]["content"]


async def test_problem_types_resolve(api: Api) -> None:
    listed = (await api.call("GET", "/problems", None)).json()
    slugs = {item["type"] for item in listed}
    assert "/problems/insufficient-funds" in slugs
    one = await api.call("GET", "/problems/insufficient-funds", None)
    assert one.json()["status"] == 422
    problem(await api.call("GET", "/problems/no-such-type", None), 404, "not-found")


class _Plugin:
    """A plugin adding a route; this one fails like a bug would."""

    @hookimpl
    def balance_routes(self) -> list[Any]:
        @get("/boom", sync_to_thread=False)
        def boom() -> None:
            raise RuntimeError("database password is hunter2")

        @get("/plugin/hello", sync_to_thread=False)
        def hello() -> dict[str, str]:
            return {"hello": "world"}

        @get("/plugin/whoami")
        async def whoami(
            principal: NamedDependency[Principal], mediator: NamedDependency[Mediator]
        ) -> dict[str, Any]:
            page = await mediator.send(ListAccounts(principal, None, None, 10))
            return {"sub": principal.subject, "accounts": len(page.items)}

        return [boom, hello, whoami]


async def test_plugin_routes_and_no_internals_in_a_500(make_api: AppFactory) -> None:
    async with make_api(extra_plugins={"test-routes": _Plugin()}) as api:
        assert (await api.call("GET", "/plugin/hello", None)).json() == {"hello": "world"}
        response = await api.call("GET", "/boom", None, headers={"X-Request-ID": "bug-1"})
        body = problem(response, 500, "internal-error")
        assert "hunter2" not in response.text
        assert "RuntimeError" not in response.text
        assert body["request_id"] == "bug-1"


async def test_plugin_routes_get_the_caller_and_the_mediator(make_api: AppFactory) -> None:
    async with make_api(extra_plugins={"test-routes": _Plugin()}) as api:
        await api.open("alice")
        await api.open("alice")
        await api.open("bob")
        assert (await api.call("GET", "/plugin/whoami", "alice")).json() == {
            "sub": "alice",
            "accounts": 2,
        }
        assert (await api.call("GET", "/plugin/whoami", "bob")).json()["accounts"] == 1
        problem(await api.call("GET", "/plugin/whoami", None), 401, "missing-token")
