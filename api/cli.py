"""The ``balance`` command line: serve the API, mint a local token, rebuild the projections, show
the configuration. Plugins add commands through the ``balance_cli_commands`` hook."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any

import click
from litestar import Litestar

from api.bootstrap import Application, bootstrap
from api.runtime import apply_runtime, freeze_startup_objects, gc_threshold, switch_interval
from core.config import (
    ConfigError,
    Settings,
    advertised_url,
    env_name,
    load_settings,
    reading_only,
)
from core.errors import BalanceError
from core.http.sse import STREAMS_STATE_KEY, StreamsClosing
from core.plugins import collect, make_plugin_manager

__all__ = ["cli", "build_cli", "main"]

log = logging.getLogger("balance.cli")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


@click.group(help="account-balance: customer accounts and balances.")
@click.version_option(package_name="account-balance", prog_name="balance")
def cli() -> None:
    pass


def _tune_runtime(settings: Settings) -> bool:
    """The switch interval and GC thresholds (see api.runtime); whether to freeze start-up
    objects once the app is built."""
    try:
        return apply_runtime(settings)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


@dataclass(frozen=True, slots=True)
class _ServerOptions:
    host: str
    port: int
    workers: int
    log_level: str
    access_log: bool


def _server_options(
    settings: Settings, host: str | None, port: int | None, workers: int | None
) -> _ServerOptions:
    """The options ``balance serve`` runs with, checked; the command line wins."""
    level = (settings.get("log_level") or "INFO").upper()
    if level not in logging.getLevelNamesMapping():
        raise ConfigError(
            f"{env_name('log_level')}: {level!r} is not a level (DEBUG, INFO, WARNING, ERROR)"
        )
    return _ServerOptions(
        host=host or settings.get("host") or "127.0.0.1",
        port=port if port is not None else settings.get_int("port", 8000),
        workers=workers if workers is not None else settings.get_int("workers", 1),
        log_level=level,
        access_log=(settings.get("access_log") or "").lower() in {"1", "true", "yes", "on"},
    )


def check_settings(settings: Settings) -> None:
    """Everything ``balance serve`` checks before it serves: its own options, the runtime
    settings, the backend names and each selected backend's settings (by building the app,
    which opens nothing and connects to nothing)."""
    from api.app import create_app

    _server_options(settings, None, None, None)
    advertised_url(settings)
    switch_interval(settings)
    gc_threshold(settings)
    create_app(bootstrap(settings))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # While uvicorn serves, its own handler takes SIGTERM and shuts down gracefully; then it
    # raises the signal again for the handler it found, this one. Python's default would end
    # the process with 143 and drop the last log lines.
    raise KeyboardInterrupt


def _serve_one(app: Litestar, options: dict[str, Any]) -> None:
    """``uvicorn.run`` for one process, which also ends the live streams (the account feeds) as
    soon as the shutdown begins: uvicorn waits for open responses, and a live stream never ends
    by itself."""
    import uvicorn

    streams: StreamsClosing = app.state[STREAMS_STATE_KEY]

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            streams.close_all()
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, **options))
    server.run()
    if not server.started:
        sys.exit(3)  # what uvicorn.run exits with when the app fails to start


@cli.command()
@click.option("--host", default=None, help="Interface to listen on [BALANCE_HOST, 127.0.0.1]")
@click.option("--port", type=int, default=None, help="Port [BALANCE_PORT, 8000]")
@click.option("--workers", type=int, default=None, help="Worker processes [BALANCE_WORKERS, 1]")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Run the HTTP API with uvicorn (the embedded SQLite backends unless configured).
    SIGTERM or SIGINT stops it gracefully, with exit status 0."""
    import uvicorn

    from api.app import create_app
    from api.observability import configure_logging

    settings = _settings()
    try:
        server = _server_options(settings, host, port, workers)
        # Where other instances reach this one: the command line's address unless configured.
        url = advertised_url(settings, server.host, server.port)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    settings = replace(settings, values={**settings.values, "advertised_url": url})
    freeze = _tune_runtime(settings)
    configure_logging(server.log_level, server.access_log)
    options: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "lifespan": "on",
        # A backstop for what cannot be told to end (the feeds of a worker process): after
        # this long, uvicorn closes what is still open.
        "timeout_graceful_shutdown": 10,
    }
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if server.workers > 1:
            # Each worker process builds its own app from the environment. Another worker may
            # append to any stream, so no worker may answer from a cached state: caching is off.
            os.environ[env_name("cache_size")] = "0"
            os.environ[env_name("advertised_url")] = url
            uvicorn.run("api.app:serve_app", factory=True, workers=server.workers, **options)
        else:
            try:
                app = create_app(bootstrap(settings))
            except BalanceError as error:
                raise click.ClickException(str(error)) from None
            if freeze:
                freeze_startup_objects()
            _serve_one(app, options)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    log.info("balance serve stopped")


@cli.group()
def projections() -> None:
    """Manage the read-model projections."""


@projections.command()
def rebuild() -> None:
    """Replay every event into a new read model beside the live one, then switch to it.

    Queries keep answering from the current read model until the switch, and a running server
    follows the new one after it; only one rebuild runs at a time."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    settings = reading_only(_settings())

    async def run() -> int:
        application = bootstrap(settings, run_projector=False)
        await application.start()
        try:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("events"),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=Console(stderr=True)) as progress:
                task = progress.add_task("rebuilding", total=None)

                def advanced(applied: int, total: int | None) -> None:
                    progress.update(task, completed=applied, total=total)

                applied = await application.projector.rebuild(advanced)
                progress.update(task, description="switched", completed=applied, total=applied)
            return applied
        finally:
            await application.close()

    try:
        total = asyncio.run(run())
    except BalanceError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"rebuilt the read model from {total} events and switched to it")


@cli.command("config")
@click.option(
    "--markdown", is_flag=True, help="Print the reference of every setting instead, in Markdown."
)
def show_config(markdown: bool) -> None:
    """Check the configuration as `balance serve` does, and print it, secrets masked."""
    if markdown:
        from api.config_reference import reference

        click.echo(reference(entry_points=True))
        return
    settings = _settings()
    try:
        check_settings(settings)
    except BalanceError as error:
        raise click.ClickException(str(error)) from None
    for key, value in settings.masked().items():
        click.echo(f"{key} = {value}")


class PluginHost:
    """Click's context object for the commands plugins add: the composition root and the
    logging set-up, so that a plugin's command needs no import of ``api``."""

    def bootstrap(self, settings: Settings, *, run_projector: bool | None = None) -> Application:
        return bootstrap(settings, run_projector=run_projector)

    def configure_logging(self, level: str) -> None:
        from api.observability import configure_logging

        configure_logging(level)


def build_cli(
    settings: Settings | None = None, extra_plugins: Mapping[str, object] | None = None
) -> click.Group:
    """The ``balance`` group with the commands that enabled plugins add."""
    group = click.Group(
        "balance",
        commands=dict(cli.commands),
        help=cli.help,
        params=cli.params,
        context_settings={"obj": PluginHost()},
    )
    try:
        settings = settings or load_settings()
        manager = make_plugin_manager(disabled=settings.disabled_plugins, extra=extra_plugins)
    except BalanceError:
        return group  # the built-in commands report the configuration error themselves
    for _plugin, command in collect(manager, "balance_cli_commands"):
        if isinstance(command, click.Command) and command.name not in group.commands:
            group.add_command(command)
    return group


def main(argv: Sequence[str] | None = None) -> None:
    build_cli().main(args=list(argv) if argv is not None else None, prog_name="balance")


if __name__ == "__main__":
    main()
