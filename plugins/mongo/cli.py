"""``balance projector``: run the read-model projection in a process of its own.

With the read model on a server (Mongo), the projection need not run inside the API: this
command opens the configured backends, follows the event store from the read model's checkpoint
and applies each batch, until SIGTERM or SIGINT. Every write is idempotent, so a second
projector, or the API's own, running at the same time wastes work but corrupts nothing.

The command builds the application through the host that runs it: the ``balance`` command line
passes it as click's context object (``ProjectorHost``), so this backend imports no shell.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol

import click

from core.config import ConfigError, Settings, load_settings, reading_only
from core.errors import BalanceError

__all__ = ["ProjectorApplication", "ProjectorHost", "projector", "run_projector"]


class _Projector(Protocol):
    @property
    def applied(self) -> int: ...

    async def run(self, stop: asyncio.Event) -> None: ...


class ProjectorApplication(Protocol):
    """What the command needs of the built application."""

    @property
    def projector(self) -> _Projector: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class ProjectorHost(Protocol):
    """Click's context object for plugin commands, set by the ``balance`` command line."""

    def bootstrap(
        self, settings: Settings, *, run_projector: bool | None = None
    ) -> ProjectorApplication: ...

    def configure_logging(self, level: str) -> None: ...


async def run_projector(application: ProjectorApplication, stop: asyncio.Event) -> int:
    """Open the backends, project until ``stop`` is set, close; return the events applied.
    ``application`` is built with ``run_projector=False``: its start opens the backends only."""
    await application.start()
    try:
        await application.projector.run(stop)
        return application.projector.applied
    finally:
        await application.close()


@click.command("projector")
@click.pass_obj
def projector(host: ProjectorHost | None) -> None:
    """Keep the read model up to date from the event store, until SIGTERM or SIGINT."""
    if host is None:
        raise click.ClickException("run `balance projector` from the balance command line")
    try:
        settings = load_settings()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    # This process appends no event: a store whose partitions the instances of a group own
    # must not hand it the writing of any.
    settings = reading_only(settings)
    host.configure_logging(settings.get("log_level") or "INFO")

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await run_projector(host.bootstrap(settings, run_projector=False), stop)

    try:
        applied = asyncio.run(main())
    except BalanceError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"projector stopped after {applied} events")
