"""A transfer's steps as messages between instances (``transfer_steps``): each step and each
outcome survives the trip, a refusal rebuilds the domain error the step raised (so the caller
gets the same answer wherever the account is written), the deployment's peer credentials
accept only their own signatures, and a placement that gains streams has the pending
transfers now written here finished."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

from core.auth import Principal
from core.placement import HERE, Placement, StreamPlacement
from core.ports import EventStore
from handlers.accounts import messages as msg
from handlers.accounts.account import account_stream
from handlers.accounts.errors import (
    AccountClosedError,
    AccountNotFoundError,
    BalanceLimitError,
    CurrencyMismatchError,
    DomainError,
    InsufficientFundsError,
    InvalidAmountError,
    TransferStepUnknownError,
    UnknownCurrencyError,
)
from handlers.accounts.ids import derived_id
from handlers.accounts.transfer import transfer_stream
from handlers.accounts.transfer_steps import (
    CheckDestination,
    CheckSource,
    Credit,
    Debit,
    Done,
    Refund,
    Refused,
    Unknown,
    decode_outcome,
    decode_step,
    encode,
    refusal,
    refused_error,
    step_stream,
)
from plugins.jwt.peers import SecretPeerCredentials
from tests.support import ALICE, FencedStore, ctx, running, settings_for

CALLER = Principal("alice", frozenset({"accounts:write"}), frozenset({"teller"}))
STEPS = [
    CheckSource("t-1", "src", "dst", "10.50", CALLER, "rent"),
    CheckDestination("t-1", "dst", "src", "EUR", 1050, CALLER, None),
    Debit("t-1", "src", "dst", 1050, "rent"),
    Credit("t-1", "dst", "src", 1050),
    Refund("t-1", "src", 1050, "account_closed"),
]


@pytest.mark.parametrize("step", STEPS, ids=lambda s: type(s).__name__)
def test_every_step_survives_the_trip_and_names_its_account(step: object) -> None:
    decoded = decode_step(encode(step))  # type: ignore[arg-type]
    assert decoded == step
    assert step_stream(decoded) == account_stream(decoded.account_id)


def test_every_outcome_survives_the_trip() -> None:
    outcomes = [
        Done(),
        Done(owner="alice", currency="EUR", amount=1050),
        refusal(InsufficientFundsError("src", 100, 1050)),
        Unknown("the instance at http://b did not answer"),
    ]
    for outcome in outcomes:
        assert decode_outcome(encode(outcome)) == outcome


@pytest.mark.parametrize(
    "error",
    [
        InsufficientFundsError("src", 100, 1050),
        AccountClosedError("dst"),
        AccountNotFoundError("dst"),
        CurrencyMismatchError("EUR", "USD"),
        BalanceLimitError(),
        InvalidAmountError("amount", "must be greater than zero"),
        UnknownCurrencyError("XXX", "currency"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_refusal_rebuilds_the_error_the_step_raised(error: DomainError) -> None:
    outcome = decode_outcome(encode(refusal(error)))
    assert isinstance(outcome, Refused)
    rebuilt = refused_error(outcome)
    assert type(rebuilt) is type(error)
    assert str(rebuilt) == str(error)
    assert vars(rebuilt) == vars(error)


def test_a_refusal_records_the_reason_a_failed_transfer_keeps() -> None:
    assert refusal(InsufficientFundsError("src", 1, 2)).reason == "insufficient_funds"
    assert refusal(AccountClosedError("dst")).reason == "account_closed"
    assert refusal(CurrencyMismatchError("EUR", "USD")).reason == "CurrencyMismatchError"


def test_a_refusal_of_an_error_it_does_not_know_is_a_domain_error_with_its_message() -> None:
    rebuilt = refused_error(Refused("odd", "SomeNewError", "something refused it"))
    assert type(rebuilt) is DomainError
    assert str(rebuilt) == "something refused it"


@pytest.mark.parametrize(
    "body",
    [b"", b"{}", b'{"type":"transfer_everything"}', b'{"type":"debit","account_id":"a"}', b"[1]"],
)
def test_anything_but_a_step_is_refused_on_the_way_in(body: bytes) -> None:
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
        decode_step(body)


def test_peer_credentials_accept_only_their_own_signatures() -> None:
    ours = SecretPeerCredentials(b"a-shared-secret-of-at-least-32-bytes")
    theirs = SecretPeerCredentials(b"another-secret-of-at-least-32-bytes!")
    signature = ours.sign(b"message")
    assert ours.verify(b"message", signature)
    assert SecretPeerCredentials(b"a-shared-secret-of-at-least-32-bytes").verify(
        b"message", signature
    )
    assert not ours.verify(b"message!", signature)
    assert not theirs.verify(b"message", signature)
    assert not ours.verify(b"message", "")


@dataclass
class Gaining:
    """Places every stream here, and tells its listeners when the test says streams moved here
    (as the Kafka store does after taking a partition over)."""

    listeners: list[Callable[[], None]] = field(default_factory=list)

    def place(self, stream_id: str) -> Placement:
        return HERE

    def on_gained(self, callback: Callable[[], None]) -> None:
        self.listeners.append(callback)


async def test_streams_gained_have_their_pending_transfers_finished(tmp_path: Path) -> None:
    """A transfer left pending (its credit got no definite answer) is finished as soon as the
    placement says streams were gained, without a restart and without the caller."""
    placement, store = Gaining(), FencedStore()
    overrides = {StreamPlacement: placement, EventStore: store}
    async with running(settings_for("memory", tmp_path), overrides=overrides) as app:
        send = app.mediator.send
        source = await send(msg.OpenAccount("EUR", ctx(), initial_deposit="10.00"))
        destination = await send(msg.OpenAccount("EUR", ctx()))
        store.fenced[account_stream(destination.id)] = "http://b.test"
        with pytest.raises(TransferStepUnknownError):
            await send(msg.Transfer(source.id, destination.id, "4.00", ctx(command_id="t-9")))
        record = transfer_stream(derived_id("transfer", ALICE.subject, "t-9"))
        assert await store.stream_version(record) == 1  # requested, pending
        del store.fenced[account_stream(destination.id)]
        assert placement.listeners

        for listener in placement.listeners:
            listener()
        transfer_id = derived_id("transfer", ALICE.subject, "t-9")
        done = await send(msg.GetTransfer(transfer_id, ALICE, min_version=2))

        assert done.status == "completed"
        assert await store.stream_version(account_stream(destination.id)) == 2


async def test_a_transfer_left_pending_is_finished_later_without_the_caller(tmp_path: Path) -> None:
    """Its credit got no definite answer (the store refused it as written elsewhere, while this
    instance still placed it here); once the store takes it again, the resumer, told that the
    run left the transfer pending, finishes it: no restart, no take-over, no retry by anyone."""
    store = FencedStore()
    settings = settings_for("memory", tmp_path, read_wait_seconds="30")
    async with running(settings, overrides={EventStore: store}) as app:
        send = app.mediator.send
        source = await send(msg.OpenAccount("EUR", ctx(), initial_deposit="10.00"))
        destination = await send(msg.OpenAccount("EUR", ctx()))
        store.fenced[account_stream(destination.id)] = "http://b.test"
        with pytest.raises(TransferStepUnknownError):
            await send(msg.Transfer(source.id, destination.id, "4.00", ctx(command_id="t-10")))
        del store.fenced[account_stream(destination.id)]

        transfer_id = derived_id("transfer", ALICE.subject, "t-10")
        done = await send(msg.GetTransfer(transfer_id, ALICE, min_version=2))

        assert done.status == "completed"
        assert await store.stream_version(account_stream(destination.id)) == 2
