"""``balance projector``: run the read-model projection in a process of its own.

With the read model on a server (Mongo), the projection need not run inside the API: this
command opens the configured backends, follows the event store from the read model's checkpoint
and applies each batch, until SIGTERM or SIGINT. Every write is idempotent, so a second
projector, or the API's own, running at the same time wastes work but corrupts nothing.
"""

from __future__ import annotations

import asyncio
import signal

import click

from core.config import ConfigError, Settings, load_settings
from core.errors import BalanceError

__all__ = ["projector", "run_projector"]


async def run_projector(settings: Settings, stop: asyncio.Event) -> int:
    """Open the backends, project until ``stop`` is set, close; return the events applied."""
    from api.bootstrap import bootstrap  # the composition root, only when the command runs

    application = bootstrap(settings, run_projector=False)
    await application.start()  # with run_projector=False: opens the backends only
    try:
        await application.projector.run(stop)
        return application.projector.applied
    finally:
        await application.close()


@click.command("projector")
def projector() -> None:
    """Keep the read model up to date from the event store, until SIGTERM or SIGINT."""
    from api.observability import configure_logging

    try:
        settings = load_settings()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    configure_logging(settings.get("log_level") or "INFO")

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        return await run_projector(settings, stop)

    try:
        applied = asyncio.run(main())
    except BalanceError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"projector stopped after {applied} events")
