"""A rebuild never drops the views under a live projector: claims on the embedded read model
(an advisory lock beside views.db), in one process and across processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import cli
from handlers.accounts.messages import OpenAccount
from handlers.accounts.readmodel import AccountReadModel, ProjectionBusyError
from plugins.sqlite.readmodel import SqliteReadModel
from tests.support import ctx, running, settings_for

ROOT = Path(__file__).resolve().parents[2]


async def test_live_claims_share_the_read_model_and_a_rebuild_excludes_all(
    tmp_path: Path,
) -> None:
    read_model = SqliteReadModel(tmp_path)
    await read_model.start()
    try:
        first = await read_model.claim("live")
        second = await read_model.claim("live")
        with pytest.raises(ProjectionBusyError, match=r"cannot rebuild .* stop it first"):
            await read_model.claim("rebuild")
        await first.release()
        with pytest.raises(ProjectionBusyError):
            await read_model.claim("rebuild")
        await second.release()
        rebuild = await read_model.claim("rebuild")
        with pytest.raises(ProjectionBusyError, match=r"cannot project into .* rebuilding it"):
            await read_model.claim("live")
        with pytest.raises(ProjectionBusyError, match="cannot rebuild"):
            await read_model.claim("rebuild")
        await rebuild.release()
        await rebuild.release()  # releasing twice is harmless
        await (await read_model.claim("live")).release()
    finally:
        await read_model.close()


async def test_a_claim_of_another_process_refuses_until_that_process_dies(tmp_path: Path) -> None:
    read_model = SqliteReadModel(tmp_path)
    await read_model.start()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from plugins.sqlite.claims import FileClaim\n"
            "claim = FileClaim.take(__import__('pathlib').Path(sys.argv[1]), 'live', 'views')\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
            str(read_model.path.with_suffix(".lock")),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ProjectionBusyError):
            await read_model.claim("rebuild")
        holder.kill()  # no clean-up runs: the kernel drops the lock with the process
        holder.wait(timeout=60)
        await (await read_model.claim("rebuild")).release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
        await read_model.close()


def test_rebuild_refuses_while_a_server_projects_into_the_read_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BALANCE_DATA_DIR", str(tmp_path))
    settings = settings_for("sqlite", tmp_path)

    async def scenario() -> None:
        async with running(settings) as app:  # projects in the background, as `serve` does
            account = await app.mediator.send(OpenAccount("EUR", ctx(), "10.00"))
            await app.projector.catch_up()
            result = await asyncio.to_thread(
                CliRunner().invoke, cli, ["projections", "rebuild"], catch_exceptions=False
            )
            assert result.exit_code == 1, result.output
            assert "cannot rebuild the read model" in result.stderr
            assert "stop it first" in result.stderr
            assert "Traceback" not in result.output
            read_model = app.container.resolve(AccountReadModel)  # type: ignore[type-abstract]
            assert await read_model.get_account(account.id) is not None  # nothing was dropped

    asyncio.run(scenario())
    result = CliRunner().invoke(cli, ["projections", "rebuild"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "rebuilt the read model from 2 events" in result.stdout


async def test_a_projector_does_not_start_while_a_rebuild_holds_the_read_model(
    tmp_path: Path,
) -> None:
    settings = settings_for("sqlite", tmp_path)
    async with running(settings, run_projector=False) as rebuilding:
        rebuild = await rebuilding.backends["read_model"].claim("rebuild")
        try:
            with pytest.raises(ProjectionBusyError, match="rebuilding it"):
                async with running(settings):
                    pass
        finally:
            await rebuild.release()
    async with running(settings) as app:
        assert app.run_projector
