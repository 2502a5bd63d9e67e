"""One rebuild at a time: the rebuild claim on the embedded read model (an advisory lock beside
the views), in one process and across processes. Live projectors take no claim: a rebuild runs
beside them (tests/integration/test_blue_green_rebuild.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from handlers.accounts.readmodel import ProjectionBusyError
from plugins.sqlite.readmodel import SqliteReadModel
from tests.support import running, settings_for

ROOT = Path(__file__).resolve().parents[2]


async def test_a_rebuild_claim_excludes_another_until_released(tmp_path: Path) -> None:
    read_model = SqliteReadModel(tmp_path)
    await read_model.start()
    try:
        rebuild = await read_model.claim()
        with pytest.raises(ProjectionBusyError, match=r"cannot rebuild .* wait for it to finish"):
            await read_model.claim()
        await rebuild.release()
        await rebuild.release()  # releasing twice is harmless
        await (await read_model.claim()).release()
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
            "claim = FileClaim.take(__import__('pathlib').Path(sys.argv[1]), 'views')\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
            str(read_model.files.rebuild_lock),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ProjectionBusyError):
            await read_model.claim()
        holder.kill()  # no clean-up runs: the kernel drops the lock with the process
        holder.wait(timeout=60)
        await (await read_model.claim()).release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
        await read_model.close()


async def test_a_second_rebuild_is_refused_while_one_runs(tmp_path: Path) -> None:
    settings = settings_for("sqlite", tmp_path)
    async with (
        running(settings, run_projector=False) as first,
        running(settings, run_projector=False) as second,
    ):
        claim = await first.backends["read_model"].claim()
        try:
            with pytest.raises(ProjectionBusyError, match="cannot rebuild"):
                await second.projector.rebuild()
        finally:
            await claim.release()
        assert await second.projector.rebuild() == 0


async def test_a_projector_starts_while_a_rebuild_holds_the_claim(tmp_path: Path) -> None:
    settings = settings_for("sqlite", tmp_path)
    async with running(settings, run_projector=False) as rebuilding:
        claim = await rebuilding.backends["read_model"].claim()
        try:
            async with running(settings) as app:
                assert app.run_projector
        finally:
            await claim.release()
