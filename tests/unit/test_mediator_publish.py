"""publish: every handler of the notification's type and base types, in registration order,
through the injected strategy; every failure reported in one NotificationError."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from core.errors import BalanceError, NotificationError
from core.mediator import Mediator
from core.mediator_builder import MediatorBuilder
from core.messages import Notification
from core.publishing import ConcurrentPublisher, PublishStrategy, SequentialPublisher

STRATEGIES = [SequentialPublisher, ConcurrentPublisher]


@dataclass(frozen=True, slots=True)
class AccountEvent(Notification):
    account: str


@dataclass(frozen=True, slots=True)
class Deposited(AccountEvent):
    amount: int


@dataclass(frozen=True, slots=True)
class Closed(AccountEvent):
    pass


class Record:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def handle(self, notification: Notification) -> None:
        self.log.append(f"{self.name}:{type(notification).__name__}")


class Fail:
    def __init__(self, error: BaseException, log: list[str]) -> None:
        self.error = error
        self.log = log

    async def handle(self, notification: Notification) -> None:
        self.log.append(f"fail:{self.error!r}")
        raise self.error


class Rendezvous:
    """Sets its own event, then waits for the partner's: completes only if both run at once."""

    def __init__(self, mine: asyncio.Event, partners: asyncio.Event) -> None:
        self.mine = mine
        self.partners = partners

    async def handle(self, notification: Notification) -> None:
        self.mine.set()
        await self.partners.wait()


def build(strategy: PublishStrategy, *handlers: tuple[type[Notification], object]) -> Mediator:
    builder = MediatorBuilder(publisher=strategy)
    for notification_type, handler in handlers:
        builder.add_notification_handler(notification_type, handler, plugin="p")  # type: ignore[arg-type]
    return builder.build()


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_handlers_of_the_type_and_its_bases_run_in_registration_order(
    strategy: type[PublishStrategy],
) -> None:
    log: list[str] = []
    mediator = build(
        strategy(),
        (Deposited, Record("deposited-1", log)),
        (AccountEvent, Record("any-account", log)),
        (Closed, Record("closed", log)),
        (Notification, Record("everything", log)),
        (Deposited, Record("deposited-2", log)),
    )

    await mediator.publish(Deposited("a", 5))
    assert log == [
        "deposited-1:Deposited",
        "any-account:Deposited",
        "everything:Deposited",
        "deposited-2:Deposited",
    ]

    log.clear()
    await mediator.publish(Closed("a"))
    await mediator.publish(Closed("a"))  # the second publish uses the cached resolution
    assert log == ["any-account:Closed", "closed:Closed", "everything:Closed"] * 2


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_notification_without_handlers_is_a_no_op(strategy: type[PublishStrategy]) -> None:
    log: list[str] = []
    mediator = build(strategy(), (Closed, Record("closed", log)))

    await mediator.publish(Deposited("a", 1))
    assert log == []


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_every_handler_runs_and_all_failures_are_grouped(
    strategy: type[PublishStrategy],
) -> None:
    log: list[str] = []
    first, second = ValueError("projection"), KeyError("email")
    mediator = build(
        strategy(),
        (Deposited, Fail(first, log)),
        (Deposited, Record("after-failure", log)),
        (AccountEvent, Fail(second, log)),
        (AccountEvent, Record("last", log)),
    )

    with pytest.raises(NotificationError) as caught:
        await mediator.publish(Deposited("a", 1))

    group = caught.value
    assert group.exceptions == (first, second)
    assert group.notification_type is Deposited
    assert group.message == f"2 notification handlers failed for {__name__}.Deposited"
    assert isinstance(group, ExceptionGroup)
    assert isinstance(group, BalanceError)
    assert sorted(log) == sorted(
        ["fail:ValueError('projection')", "after-failure:Deposited", "fail:KeyError('email')",
         "last:Deposited"]
    )  # fmt: skip


async def test_a_single_failure_is_still_a_group_and_except_star_keeps_the_type() -> None:
    mediator = build(SequentialPublisher(), (Closed, Fail(ValueError("boom"), [])))

    with pytest.raises(NotificationError, match=r"^1 notification handler failed for ") as caught:
        await mediator.publish(Closed("a"))
    matched, rest = caught.value.split(ValueError)
    assert isinstance(matched, NotificationError)
    assert rest is None
    assert matched.notification_type is Closed


async def test_concurrent_publisher_runs_handlers_at_the_same_time() -> None:
    one, two = asyncio.Event(), asyncio.Event()
    mediator = build(
        ConcurrentPublisher(), (Closed, Rendezvous(one, two)), (Closed, Rendezvous(two, one))
    )

    await asyncio.wait_for(mediator.publish(Closed("a")), timeout=1)
    assert one.is_set()
    assert two.is_set()


async def test_sequential_publisher_runs_handlers_one_at_a_time() -> None:
    one, two = asyncio.Event(), asyncio.Event()
    mediator = build(
        SequentialPublisher(), (Closed, Rendezvous(one, two)), (Closed, Rendezvous(two, one))
    )

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(mediator.publish(Closed("a")), timeout=0.05)
    assert one.is_set()
    assert not two.is_set()


async def test_concurrent_publisher_does_not_cancel_the_others_when_one_fails() -> None:
    log: list[str] = []
    release = asyncio.Event()

    class Slow:
        async def handle(self, notification: Closed) -> None:
            await release.wait()
            log.append("slow finished")

    class FailThenRelease:
        async def handle(self, notification: Closed) -> None:
            asyncio.get_running_loop().call_soon(release.set)
            raise ValueError("fast failure")

    mediator = build(ConcurrentPublisher(), (Closed, Slow()), (Closed, FailThenRelease()))

    with pytest.raises(NotificationError) as caught:
        await asyncio.wait_for(mediator.publish(Closed("a")), timeout=1)
    assert [str(e) for e in caught.value.exceptions] == ["fast failure"]
    assert log == ["slow finished"]


class Abort(BaseException):
    """Not an Exception: like KeyboardInterrupt or SystemExit, must never be grouped."""


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("error", [Abort("stop"), asyncio.CancelledError()])
async def test_base_exceptions_propagate_ungrouped(
    strategy: type[PublishStrategy], error: BaseException
) -> None:
    log: list[str] = []
    mediator = build(
        strategy(),
        (Closed, Fail(ValueError("ordinary"), log)),
        (Closed, Fail(error, log)),
    )

    with pytest.raises(type(error)):
        await mediator.publish(Closed("a"))
    assert log[0] == "fail:ValueError('ordinary')"
