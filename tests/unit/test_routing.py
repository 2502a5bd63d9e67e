"""Routing before deciding (``core.routing``): a command whose stream another instance writes is
refused with ``OwnedElsewhereError`` before its handler runs, one whose stream is moving with
``StreamMovingError``; the accounts commands name their streams, and the app registers the
single-writer placement unless the event store brought its own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from core.config import Settings
from core.container import Container
from core.errors import OwnedElsewhereError, StreamMovingError
from core.hookspecs import hookimpl
from core.placement import HERE, Elsewhere, Moving, Placement, StreamPlacement
from core.ports import EventStore
from core.registry import BackendOffer
from core.routing import RouteToWriter, fresh_id_here, require_here
from handlers.accounts import messages as msg
from handlers.accounts.account import account_stream
from handlers.accounts.errors import TransferAcrossInstancesError, TransferStepUnknownError
from handlers.accounts.ids import derived_id
from handlers.accounts.transfer import transfer_stream
from plugins.memory.store import MemoryEventStore
from tests.support import ALICE, FencedStore, build, ctx, running, settings_for

OWNER = "http://10.0.0.2:8000"


@dataclass
class Chosen:
    """Places the streams it was told about; every other stream is written here."""

    places: dict[str, Placement]

    def place(self, stream_id: str) -> Placement:
        return self.places.get(stream_id, HERE)


@dataclass(frozen=True)
class Command:
    routing_stream: str | None


class Handler:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        return "handled"


async def test_a_command_whose_stream_is_written_here_is_handled() -> None:
    handler = Handler()
    behavior = RouteToWriter(Chosen({"account-b": Elsewhere(OWNER)}))
    assert await behavior.handle(Command("account-a"), handler) == "handled"
    assert handler.calls == 1


async def test_a_command_whose_stream_is_written_elsewhere_goes_no_further() -> None:
    handler = Handler()
    behavior = RouteToWriter(Chosen({"account-b": Elsewhere(OWNER)}))
    with pytest.raises(OwnedElsewhereError) as raised:
        await behavior.handle(Command("account-b"), handler)
    assert (raised.value.stream_id, raised.value.url) == ("account-b", OWNER)
    assert handler.calls == 0


async def test_a_command_whose_stream_is_moving_goes_no_further() -> None:
    handler = Handler()
    behavior = RouteToWriter(Chosen({"account-b": Moving(retry_after=3.0)}))
    with pytest.raises(StreamMovingError) as raised:
        await behavior.handle(Command("account-b"), handler)
    assert (raised.value.stream_id, raised.value.retry_after) == ("account-b", 3.0)
    assert handler.calls == 0


async def test_a_command_without_a_known_stream_is_left_to_its_handler() -> None:
    class Refusing:
        def place(self, stream_id: str) -> Placement:
            raise AssertionError("no stream to place")

    handler = Handler()
    assert await RouteToWriter(Refusing()).handle(Command(None), handler) == "handled"


def _ids(*values: str) -> Iterator[str]:
    return iter(values)


def test_a_fresh_id_is_one_whose_stream_is_written_here() -> None:
    placement = Chosen({"s-1": Elsewhere(OWNER), "s-2": Moving()})
    drawn = _ids("1", "2", "3", "4")
    chosen = fresh_id_here(placement, lambda: next(drawn), lambda i: f"s-{i}")
    assert chosen == "3"


def test_without_a_fresh_id_written_here_the_last_draws_placement_decides() -> None:
    elsewhere = Chosen({f"s-{i}": Elsewhere(OWNER) for i in range(4)})
    drawn = _ids("0", "1", "2", "3")
    with pytest.raises(OwnedElsewhereError) as raised:
        fresh_id_here(elsewhere, lambda: next(drawn), lambda i: f"s-{i}", attempts=4)
    assert raised.value.stream_id == "s-3"

    moving = Chosen({f"s-{i}": Moving(2.0) for i in range(2)})
    drawn = _ids("0", "1")
    with pytest.raises(StreamMovingError):
        fresh_id_here(moving, lambda: next(drawn), lambda i: f"s-{i}", attempts=2)


def test_require_here_returns_for_a_stream_written_here() -> None:
    require_here(Chosen({}), "account-a")


def test_each_command_names_the_stream_whose_writer_decides_it() -> None:
    context = ctx()
    assert msg.Deposit("a", "1.00", context).routing_stream == account_stream("a")
    assert msg.Withdraw("a", "1.00", context).routing_stream == account_stream("a")
    assert msg.CloseAccount("a", context).routing_stream == account_stream("a")
    # A transfer runs where its own record is written; without a key it gets an id written here.
    keyed_transfer = msg.Transfer("a", "b", "1.00", ctx(command_id="t-0"))
    record = transfer_stream(derived_id("transfer", ALICE.subject, "t-0"))
    assert keyed_transfer.routing_stream == record
    assert msg.Transfer("a", "b", "1.00", context).routing_stream is None
    keyed = msg.OpenAccount("EUR", ctx(command_id="k-1"))
    assert keyed.routing_stream == account_stream(derived_id(ALICE.subject, "k-1"))
    # Without a key the account's id is drawn by the handler, among the ids written here.
    assert msg.OpenAccount("EUR", context).routing_stream is None


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for("memory", tmp_path)


async def test_a_withdrawal_owned_elsewhere_is_not_decided_on_this_instances_state(
    settings: Settings,
) -> None:
    """This instance's copy of the account is empty: deciding here would refuse the withdrawal
    for insufficient funds, a wrong answer when the owner holds money. It is routed instead."""
    placement = Chosen({})
    async with running(settings, overrides={StreamPlacement: placement}) as app:
        opened = await app.mediator.send(msg.OpenAccount("EUR", ctx()))
        stream = account_stream(opened.id)
        placement.places[stream] = Elsewhere(OWNER)
        store = app.container.resolve(EventStore)
        with pytest.raises(OwnedElsewhereError) as raised:
            await app.mediator.send(msg.Withdraw(opened.id, "5.00", ctx()))
        assert raised.value.url == OWNER
        placement.places[stream] = Moving(4.0)
        with pytest.raises(StreamMovingError):
            await app.mediator.send(msg.Deposit(opened.id, "5.00", ctx()))
        assert await store.stream_version(stream) == 1


async def test_an_account_opened_without_a_key_gets_an_id_written_here(
    settings: Settings,
) -> None:
    class HereOnlyFor:
        """Writes here one new stream in four, in the order they are asked about; every other
        one elsewhere. Each stream keeps its first answer."""

        def __init__(self) -> None:
            self.answers: dict[str, Placement] = {}

        def place(self, stream_id: str) -> Placement:
            if stream_id not in self.answers:
                here = len(self.answers) % 4 == 3
                self.answers[stream_id] = HERE if here else Elsewhere(OWNER)
            return self.answers[stream_id]

    placement = HereOnlyFor()
    async with running(settings, overrides={StreamPlacement: placement}) as app:
        for _ in range(5):
            opened = await app.mediator.send(msg.OpenAccount("EUR", ctx()))
            assert placement.answers[account_stream(opened.id)] == HERE
    # Each open drew ids until one was written here: three of every four went elsewhere.
    assert sum(answer != HERE for answer in placement.answers.values()) >= 15


async def test_an_append_refused_as_owned_elsewhere_is_not_retried(settings: Settings) -> None:
    """The store's own refusal (ownership moved after the check) reaches the caller as it is:
    the retry on conflicts does not take it for a conflict."""

    store = FencedStore()
    fenced_settings = replace(settings, event_store="fenced")
    async with running(fenced_settings, extra_plugins={"fenced": store.plugin}) as app:
        opened = await app.mediator.send(msg.OpenAccount("EUR", ctx()))
        store.fenced[account_stream(opened.id)] = OWNER
        before = store.appends
        with pytest.raises(OwnedElsewhereError):
            await app.mediator.send(msg.Deposit(opened.id, "5.00", ctx()))
        assert store.appends == before + 1


def test_the_single_writer_placement_is_the_default(settings: Settings) -> None:
    app = build(settings)
    placement = app.container.resolve(StreamPlacement)
    assert placement.place("account-x") == HERE


def test_an_event_stores_own_placement_is_kept(settings: Settings) -> None:
    own = Chosen({"account-x": Elsewhere(OWNER)})

    def store_with_placement(settings: Settings, container: Container) -> MemoryEventStore:
        container.register_instance(StreamPlacement, own)
        return MemoryEventStore()

    class Plugin:
        @hookimpl
        def balance_backends(self) -> list[BackendOffer]:
            return [BackendOffer("event_store", "placed", store_with_placement)]

    app = build(replace(settings, event_store="placed"), extra_plugins={"placed": Plugin()})
    assert app.container.resolve(StreamPlacement) is own


async def test_a_transfer_is_routed_by_its_record_and_refused_without_peer_credentials(
    settings: Settings,
) -> None:
    """The transfer runs where its record is written. A step whose account another instance
    writes is sent there, signed with the deployment's peer credentials; without any (this
    deployment's authenticator shares no secret) the transfer is refused before any write. A
    destination that stays "moving" gives no definite answer: 503, nothing written."""
    placement = Chosen({})
    async with running(settings, overrides={StreamPlacement: placement}) as app:
        store = app.container.resolve(EventStore)
        send = app.mediator.send
        source = await send(msg.OpenAccount("EUR", ctx(), initial_deposit="10.00"))
        destination = await send(msg.OpenAccount("EUR", ctx()))
        keyed = ctx(command_id="t-1")
        record = transfer_stream(derived_id("transfer", ALICE.subject, "t-1"))

        placement.places[account_stream(destination.id)] = Elsewhere(OWNER)
        with pytest.raises(TransferAcrossInstancesError):
            await send(msg.Transfer(source.id, destination.id, "1.00", keyed))
        placement.places[account_stream(destination.id)] = Moving(0.1)
        with pytest.raises(TransferStepUnknownError):
            await send(msg.Transfer(source.id, destination.id, "1.00", keyed))
        placement.places = {record: Elsewhere(OWNER)}
        with pytest.raises(OwnedElsewhereError) as elsewhere:
            await send(msg.Transfer(source.id, destination.id, "1.00", keyed))
        assert elsewhere.value.stream_id == record

        assert await store.stream_version(account_stream(source.id)) == 2
        assert await store.stream_version(account_stream(destination.id)) == 1
        assert await store.stream_version(record) == 0
        placement.places = {}
        done = await send(msg.Transfer(source.id, destination.id, "1.00", keyed))
        assert done.status == "completed"


async def test_resuming_leaves_pending_the_transfers_whose_steps_get_no_answer(
    settings: Settings,
) -> None:
    placement = Chosen({})
    store = FencedStore()
    overrides = {StreamPlacement: placement, EventStore: store}
    async with running(settings, overrides=overrides) as app:
        send = app.mediator.send
        source = await send(msg.OpenAccount("EUR", ctx(), initial_deposit="10.00"))
        destination = await send(msg.OpenAccount("EUR", ctx()))
        # Ownership of the destination moves after the checks: the credit is refused by the
        # store, again and again, while this instance still places the account here.
        store.fenced[account_stream(destination.id)] = OWNER
        with pytest.raises(TransferStepUnknownError):
            await send(msg.Transfer(source.id, destination.id, "4.00", ctx(command_id="t-2")))
        transfer_id = derived_id("transfer", ALICE.subject, "t-2")
        pending = await send(msg.GetTransfer(transfer_id, ALICE, min_version=1))
        assert pending.status == "pending"

        assert await send(msg.ResumeTransfers()) == 0  # still refused: left pending
        del store.fenced[account_stream(destination.id)]
        placement.places[transfer_stream(transfer_id)] = Elsewhere(OWNER)
        assert await send(msg.ResumeTransfers()) == 0  # its record's writer resumes it
        assert await store.stream_version(transfer_stream(transfer_id)) == 1  # requested
        assert await store.stream_version(account_stream(source.id)) == 3  # debited

        placement.places = {}
        assert await send(msg.ResumeTransfers()) == 1
        assert await store.stream_version(transfer_stream(transfer_id)) == 2  # completed
        assert await store.stream_version(account_stream(destination.id)) == 2  # credited
        assert await store.stream_version(account_stream(source.id)) == 3
