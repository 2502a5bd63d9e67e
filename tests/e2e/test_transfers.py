"""Transfers over HTTP: completed, failed with a reason, refused up front, read back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from core.ports import EventStore
from core.records import EventRecord
from handlers.accounts.messages import Withdraw
from plugins.memory import MemoryEventStore
from tests.e2e.conftest import TELLER, Api, AppFactory, problem
from tests.support import TELLER as TELLER_PRINCIPAL
from tests.support import ctx


async def _transfer(api: Api, source: str, destination: str, amount: Any, **extra: Any) -> Any:
    body = {"source": source, "destination": destination, "amount": amount, **extra}
    return await api.call("POST", "/transfers", "alice", json=body)


async def test_completed_transfer_is_201_and_moves_the_money(api: Api) -> None:
    a = (await api.open(deposit="100.00"))["id"]
    b = (await api.open("bob"))["id"]
    response = await _transfer(api, a, b, "40.00", description="dinner")
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/transfers/{body['id']}"
    assert body["source"] == a
    assert body["destination"] == b
    assert body["amount"] == "40.00"
    assert body["currency"] == "EUR"
    assert body["status"] == "completed"
    assert body["description"] == "dinner"
    assert "reason" not in body
    assert (await api.account(a, min_version=3)).json()["balance"] == "60.00"
    assert (await api.account(b, "bob", min_version=2)).json()["balance"] == "40.00"

    read = await api.call("GET", f"/transfers/{body['id']}?min_version=2")
    assert read.status_code == 200
    assert read.json() == body
    lines = (await api.call("GET", f"/accounts/{a}/transactions?min_version=3")).json()["items"]
    assert lines[-1]["kind"] == "transfer_out"
    assert lines[-1]["transfer_id"] == body["id"]
    assert lines[-1]["counterparty"] == b


class _RaceStore:
    """The memory store, with one chance to act right after a transfer is recorded and before
    its steps run: another request empties the source account in between."""

    def __init__(self) -> None:
        self.inner = MemoryEventStore()
        self.between: Callable[[], Awaitable[None]] | None = None

    async def append(
        self, stream_id: str, expected_version: int, events: Sequence[EventRecord]
    ) -> Sequence[EventRecord]:
        stored = await self.inner.append(stream_id, expected_version, events)
        if stream_id.startswith("transfer-") and expected_version == 0 and self.between:
            between, self.between = self.between, None
            await between()
        return stored

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_failed_transfer_is_201_with_a_reason_and_moves_nothing(
    make_api: AppFactory,
) -> None:
    store = _RaceStore()
    async with make_api(overrides={EventStore: store}) as api:
        a = (await api.open(deposit="100.00"))["id"]
        b = (await api.open("bob"))["id"]

        async def empty_the_source() -> None:
            await api.application.mediator.send(Withdraw(a, "100.00", ctx(TELLER_PRINCIPAL)))

        store.between = empty_the_source
        response = await _transfer(api, a, b, "40.00")
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["status"], body["reason"]) == ("failed", "insufficient_funds")
        read = await api.call("GET", f"/transfers/{body['id']}?min_version=2")
        assert (read.json()["status"], read.json()["reason"]) == ("failed", "insufficient_funds")
        assert (await api.account(a, min_version=3)).json()["balance"] == "0.00"
        assert (await api.account(b, "bob", min_version=1)).json()["balance"] == "0.00"


async def test_rules_refused_up_front(api: Api) -> None:
    a = (await api.open(deposit="10.00"))["id"]
    b = (await api.open("bob"))["id"]
    dollars = (await api.open(currency="USD"))["id"]
    spare = (await api.open())["id"]
    problem(await _transfer(api, a, b, "10.01"), 422, "insufficient-funds")
    problem(await _transfer(api, a, dollars, "1.00"), 409, "currency-mismatch")
    body = problem(await _transfer(api, a, a, "1.00"), 422, "same-account")
    assert body["field"] == "destination"
    body = problem(await _transfer(api, a, b, "0.001"), 422, "invalid-amount")
    assert body["field"] == "amount"
    problem(await _transfer(api, a, "no-such-account", "1.00"), 404, "account-not-found")
    assert (await api.call("DELETE", f"/accounts/{spare}")).status_code == 204
    problem(await _transfer(api, a, spare, "1.00"), 409, "account-closed")
    body = problem(
        await api.call("POST", "/transfers", json={"source": a}), 422, "validation-error"
    )
    assert body["field"] in {"destination", "amount"}
    assert (await api.account(a, min_version=2)).json()["balance"] == "10.00"


async def test_unknown_transfer_is_404(api: Api) -> None:
    problem(await api.call("GET", "/transfers/no-such-transfer"), 404, "transfer-not-found")


async def test_a_teller_reads_any_transfer(api: Api) -> None:
    a = (await api.open(deposit="10.00"))["id"]
    b = (await api.open("bob"))["id"]
    transfer = (await _transfer(api, a, b, "1.00")).json()
    read = await api.call("GET", f"/transfers/{transfer['id']}?min_version=2", TELLER)
    assert read.status_code == 200
    assert read.json()["status"] == "completed"
