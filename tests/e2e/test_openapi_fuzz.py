"""Property-based fuzzing of the HTTP API against its own OpenAPI document.

Schemathesis reads ``/schema/openapi.json`` from the app, in-process, on the embedded SQLite
backend with the real JWT authenticator, and sends requests with a real bearer token. It runs
all its phases: the document's examples; coverage of each parameter's edges, of missing and
unexpected fields and of methods the path does not take; random requests that fit the document
(positive) and that break it (negative); and stateful sequences that carry the ids and versions
one response gives into the next requests (open, deposit, transfer, read, close...).

Every response must keep the document's word: no 5xx, a documented status, the documented
content type, a body and headers that match the documented schema, ``Allow`` naming the path's
methods, invalid requests refused, requests without or with a bad token refused, and a request
that fits the document refused only by a rule of the domain (insufficient funds, a zero
amount, a cursor the API did not issue...), never for its shape.

The fuzzer draws ids (and amounts) half the time from accounts and a transfer seeded before the
run, so that requests reach past "not found": transfers go through, or meet each rule.

The run is reproducible (a fixed seed, no example database) and bounded: ``MAX_EXAMPLES`` per
operation and phase keeps it to a few minutes on a slow host.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi

from api.app import create_app
from api.bootstrap import bootstrap
from plugins.jwt.tokens import mint_token
from tests.e2e.conftest import Api, e2e_settings, problem

SEED = 20261206
MAX_EXAMPLES = 40
# How often an id (or an amount) is one of the seeded ones rather than any the document allows.
KNOWN_ID_PROBABILITY = 0.5

INSTANTS = ("at", "from", "to")


# Problems a request gets for its shape: the document describes the shape, so a request that
# fits the document never gets one of these.
SHAPE_PROBLEMS = frozenset(
    f"/problems/{slug}"
    for slug in ("validation-error", "malformed-json", "unsupported-media-type", "invalid-header")
)


@schemathesis.check
def refused_only_by_a_rule(ctx: Any, response: Any, case: Any) -> bool | None:
    """A request that fits the document is refused by a rule of the domain, never for its
    shape, and the instants it sends are read as the instants they are."""
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return None
    if response.status_code not in (400, 415, 422):
        return None
    problem = response.json()
    if problem["type"] in SHAPE_PROBLEMS:
        raise AssertionError(f"a request that fits the document was refused: {problem}")
    if problem["type"] == "/problems/invalid-request":
        named = problem.get("field")
        # the one rule on an instant: `from` comes before `to`
        ordered = named == "from" and {"from", "to"} <= set(case.query or {})
        if named in INSTANTS and not ordered:
            raise AssertionError(f"a date-time that fits the document was refused: {problem}")
    return None


@dataclass
class Run:
    requests: int = 0
    # (operation, status, problem type) -> responses
    statuses: Counter[tuple[str, int, str]] = field(default_factory=Counter)
    # (operation, check, title) -> the first failure's message and request
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    operations: set[str] = field(default_factory=set)

    def reached(self) -> set[str]:
        """The operations that answered 2xx at least once."""
        return {label for label, status, _ in self.statuses if 200 <= status < 300}


FEED_PATH = "/accounts/{account_id}/events"


def _config(token: str, ids: dict[str, list[str]]) -> SchemathesisConfig:
    known = {"probability": KNOWN_ID_PROBABILITY}
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            # the one health check that measures the host's speed
            "suppress-health-check": ["too_slow"],
            "continue-on-failure": True,
            "headers": {"Authorization": f"Bearer {token}"},
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "dictionaries": {name: {"values": values} for name, values in ids.items()},
            "parameters": {
                "path.account_id": {"dictionary": "accounts", **known},
                "body.source": {"dictionary": "sources", **known},
                "body.destination": {"dictionary": "destinations", **known},
                "path.transfer_id": {"dictionary": "transfers", **known},
                "body.amount": {"dictionary": "amounts", **known},
            },
            "checks": {
                # A domain rule answers 422 to requests the document cannot tell apart
                # (insufficient funds, the currency's decimals...); refused_only_by_a_rule
                # checks that such a 422 is a rule's, not the shape's.
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
                },
                # DELETE /accounts/{id} closes the account; it stays readable, status "closed".
                "use_after_free": {"enabled": False},
            },
        }
    )


def _seed(app: Any, tokens: dict[str, str]) -> dict[str, list[str]]:
    """Accounts and a transfer for the fuzzer to use: alice's, funded, in two currencies, and
    closed, and bob's, which alice may pay into but not see. Sources are alice's funded
    accounts and destinations the others, so that a transfer between two of them can go
    through or meet each rule."""
    with asgi.get_client(app) as client:

        def send(method: str, path: str, who: str, body: Any = None) -> dict[str, Any]:
            headers = {"Authorization": f"Bearer {tokens[who]}"}
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code in (201, 204), response.text
            return dict(response.json()) if response.content else {}

        def open_(who: str, currency: str, deposit: str | None = None) -> str:
            body = {"currency": currency, "initial_deposit": deposit}
            return str(send("POST", "/accounts", who, body)["id"])

        sources = [open_("alice", "EUR", "1000.00"), open_("alice", "USD", "1000.00")]
        closed = open_("alice", "EUR")
        send("DELETE", f"/accounts/{closed}", "alice")
        destinations = [
            open_("alice", "EUR", "1000.00"),
            open_("bob", "EUR", "10.00"),
            open_("bob", "JPY"),
            closed,
        ]
        body = {"source": sources[0], "destination": destinations[0], "amount": "10.00"}
        transfer = send("POST", "/transfers", "alice", body)["id"]
    return {
        "accounts": sources + destinations,
        "sources": sources,
        "destinations": destinations,
        "transfers": [transfer],
        # amounts that the seeded balances cover, in the currencies' decimals
        "amounts": ["0.01", "1", "2.50"],
    }


def _fuzz(tmp_path: Path) -> Run:
    settings = e2e_settings(tmp_path, "sqlite")
    app = create_app(bootstrap(settings))
    tokens = {
        who: mint_token(settings, who, ("accounts:read", "accounts:write"), ())
        for who in ("alice", "bob")
    }
    run = Run()
    try:
        config = _config(tokens["alice"], _seed(app, tokens))
        schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app, config=config)
        # A live feed answers with a stream that does not end while its account is open: a
        # request/response fuzzer cannot read it. tests/e2e/test_feeds.py covers its answers.
        schema = schema.exclude(path=FEED_PATH, method="GET")
        run.operations = {result.ok().label for result in schema.get_all_operations()}
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                _record(run, event.recorder)
            elif isinstance(event, events.NonFatalError | events.FatalError):
                run.errors.append(repr(event))
    finally:
        asgi.shutdown_lifespans()
    return run


def _record(run: Run, recorder: Any) -> None:
    for case_id, interaction in recorder.interactions.items():
        run.requests += 1
        label = recorder.cases[case_id].value.operation.label
        response = interaction.response
        status = response.status_code if response is not None else 0
        run.statuses[(label, status, _problem_type(response))] += 1
    for case_id, checks in recorder.checks.items():
        case = recorder.cases[case_id].value
        for check in checks:
            if check.failure_info is None:
                continue
            failure = check.failure_info.failure
            detail = f"{failure.message}\n{check.failure_info.code_sample}"
            key = (case.operation.label, check.name, failure.title)
            run.failures.setdefault(key, detail)


def _problem_type(response: Any) -> str:
    if response is None or not response.headers.get("content-type", [""])[0].startswith(
        "application/problem+json"
    ):
        return ""
    return str(response.json().get("type", ""))


def _lines(run: Run) -> Iterator[str]:
    yield f"{run.requests} requests"
    for (label, status, kind), count in sorted(run.statuses.items()):
        yield f"  {label} -> {status} {kind}: {count}"
    for (label, check, title), detail in run.failures.items():
        yield f"FAILED {check} on {label}: {title}\n{detail}"
    yield from run.errors


def test_the_api_keeps_the_word_of_its_openapi_document(tmp_path: Path) -> None:
    run = _fuzz(tmp_path)
    print("\n".join(_lines(run)))
    assert not run.errors
    assert not run.failures
    # it explored: every operation of the document answered 2xx to some request
    assert run.operations
    assert run.reached() == run.operations


@pytest.mark.parametrize("name", INSTANTS)
async def test_an_empty_instant_is_refused(api: Api, name: str) -> None:
    account = (await api.open())["id"]
    path = "balance" if name == "at" else "transactions"
    response = await api.call("GET", f"/accounts/{account}/{path}?{name}=")
    assert problem(response, 422, "invalid-request")["field"] == name
